#!/usr/bin/env python3
"""One run of S4's ResNet-50 study (studies/s4_resnet50_cifar.toml; seed 004 tables 5.3-5.4)
written the usual PyTorch way, as the GPU peer of `normlab study run ... --set device=cuda`:
torchvision's ResNet-50 with the CIFAR stem (3x3 stride-1 conv1, no max-pool), BatchNorm
momentum beta, SGD lr 0.1 momentum 0.9, batch 100, random horizontal flip and 4-pixel padded
crop on the device, evaluation on the test batch after every epoch.

  --data DIR       a CIFAR-10 binary directory; the training set is data_batch_1..5.bin, or,
                   with --train-from-test, test_batch.bin (what fits a device call's 64 MiB)
  --expert         channels_last and cudnn.benchmark, as an expert would write it

Prints one JSON line: {"momentum", "epochs", "images", "epoch_s": [...], "test_acc"}.
"""

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

kMean = (0.4914, 0.4822, 0.4465)  # normlab's "cifar" normalisation preset
kStd = (0.2470, 0.2435, 0.2616)


def read_batches(paths):
    raw = np.concatenate([np.fromfile(p, dtype=np.uint8).reshape(-1, 3073) for p in paths])
    labels = torch.from_numpy(raw[:, 0].astype(np.int64))
    images = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy())
    return images, labels


def build(momentum, classes):
    model = torchvision.models.resnet50(num_classes=classes)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = momentum
    return model


def augment(x):
    n = x.shape[0]
    flip = torch.rand(n, device=x.device) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    padded = F.pad(x, (4, 4, 4, 4))
    dy, dx = torch.randint(0, 9, (2,)).tolist()  # one offset per batch keeps it one kernel
    return padded[:, :, dy : dy + 32, dx : dx + 32]


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--train-from-test", action="store_true")
    p.add_argument("--momentum", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--expert", action="store_true")
    p.add_argument("--device", default="cuda")
    p.add_argument("--limit", type=int, default=0, help="use the first N images of each set")
    a = p.parse_args()

    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    torch.backends.cudnn.benchmark = a.expert
    test_x, test_y = read_batches([os.path.join(a.data, "test_batch.bin")])
    if a.train_from_test:
        train_x, train_y = test_x, test_y
    else:
        train_x, train_y = read_batches(
            [os.path.join(a.data, f"data_batch_{i}.bin") for i in range(1, 6)]
        )
    if a.limit:
        train_x, train_y, test_x, test_y = (t[: a.limit] for t in (train_x, train_y, test_x, test_y))
    mean = torch.tensor(kMean, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(kStd, device=dev).view(1, 3, 1, 1)
    norm = lambda u8: (u8.to(dev).float() / 255.0 - mean) / std
    train_x, train_y, test_x, test_y = norm(train_x), train_y.to(dev), norm(test_x), test_y.to(dev)

    model = build(a.momentum, 10).to(dev)
    fmt = torch.channels_last if a.expert else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    epoch_s = []
    for _ in range(a.epochs):
        sync(dev)
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(train_x.shape[0], device=dev)
        for i in range(0, train_x.shape[0], 100):
            idx = order[i : i + 100]
            x = augment(train_x[idx]).contiguous(memory_format=fmt)
            loss = F.cross_entropy(model(x), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, test_x.shape[0], 500):
                x = test_x[i : i + 500].contiguous(memory_format=fmt)
                correct += (model(x).argmax(1) == test_y[i : i + 500]).sum()
        sync(dev)
        acc = correct.item() / test_x.shape[0]
        epoch_s.append(time.perf_counter() - t0)
    print(json.dumps({"momentum": a.momentum, "epochs": a.epochs, "images": train_x.shape[0],
                      "expert": a.expert, "epoch_s": epoch_s, "test_acc": acc}))


if __name__ == "__main__":
    main()
