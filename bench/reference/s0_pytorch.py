#!/usr/bin/env python3
"""S0 reference: one configuration of STUDIES.md S0, written the way a PyTorch user writes it.

MobileNetV2 (ImageNet weights converted from TFLite, ../shared/data/weights) fine-tuned on
CIFAR-10 with a Linear(1280,256) -> Norm -> ReLU -> Dropout(0.2) -> Linear(256,10) head:
a torch.utils.data.Dataset returning PIL images, torchvision transforms, a DataLoader, one
model per process. bench/s0_bench.py runs this once per configuration and seed and compares
its speed and accuracy with normlab's. Nothing here is tuned for speed on purpose: it is the
baseline a user would have.

  /usr/bin/python3 bench/reference/s0_pytorch.py --data DIR --norm bn --clip 0.1 --epochs 3 \
      --threads 2 --json out.json

DIR holds CIFAR-10 in the official binary layout: data_batch_*.bin is the training set,
test_batch.bin the validation set (each record = 1 label byte + 3072 bytes, R, G, B planes).
"""

import argparse
import glob
import json
import os
import random
import struct
import sys
import time

_T_START = time.perf_counter()  # before the heavy imports: wall_seconds covers them too

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

# CIFAR-10 binary layout (https://www.cs.toronto.edu/~kriz/cifar.html): 1 label byte, then
# 32x32 R, G, B planes.
kCifarHw = 32
kCifarRecord = 1 + 3 * kCifarHw * kCifarHw

# The TFLite weights' input convention, (pixel - 128) / 128 (../shared/data/README.md). With
# t = ToTensor output = pixel / 255 this is (t - 128/255) / (128/255).
kTfMean = [128.0 / 255.0] * 3
kTfStd = [128.0 / 255.0] * 3

# The five stride-2 3x3 convolutions that TensorFlow padded 'SAME' (../shared/data/README.md).
kTfSameConvs = [
    "features.0.0",
    "features.2.conv.1.0",
    "features.4.conv.1.0",
    "features.7.conv.1.0",
    "features.14.conv.1.0",
]

# S0 (STUDIES.md): features.18 at lr 1e-5, the new head at 1e-3, Adam, batch 64.
kTrunkLr = 1e-5
kHeadLr = 1e-3
kBatch = 64
kEvalBatch = 256  # normlab's train.eval_batch_size default
kHidden = 256
kDropout = 0.2

# FRN for (N, C) vectors exactly as normlab's head slot "frn" (src/nn/frn.cpp, norm.cpp):
# eps = eps0 + |eps_l| with eps0 = 1e-6 and a learned eps_l starting at 1e-4 (Singh &
# Krishnan 2020, section 3.2); gamma = 1, beta = 0, tau = 0.
kFrnEps0 = 1e-6
kFrnLearnedEpsInit = 1e-4


# ---------------------------------------------------------------------------------------------
# Weights: a tiny safetensors reader (the `safetensors` package is not installed).
# Format: 8-byte little-endian header length, JSON header {name: {dtype, shape,
# data_offsets}}, then the raw little-endian tensor bytes.

_SAFETENSORS_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _SAFETENSORS_DTYPES:
            sys.exit(f"{path}: tensor {name} has dtype {info['dtype']}; this reader knows "
                     f"{sorted(_SAFETENSORS_DTYPES)}")
        begin, end = info["data_offsets"]
        dtype = np.dtype(_SAFETENSORS_DTYPES[info["dtype"]]).newbyteorder("<")
        array = np.frombuffer(data[begin:end], dtype=dtype).reshape(info["shape"])
        tensors[name] = torch.from_numpy(array.astype(array.dtype.newbyteorder("="), copy=True))
    return tensors


# ---------------------------------------------------------------------------------------------
# Data


class CifarBinary(Dataset):
    """CIFAR-10 binary files -> (PIL image, label), in file order."""

    def __init__(self, files, transform):
        raw = b"".join(open(f, "rb").read() for f in files)
        if len(raw) == 0 or len(raw) % kCifarRecord != 0:
            sys.exit(f"{files}: {len(raw)} bytes is not a whole number of "
                     f"{kCifarRecord}-byte CIFAR records")
        records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, kCifarRecord)
        self.labels = records[:, 0].astype(np.int64)
        # (N, 3, 32, 32) planes -> (N, 32, 32, 3) for PIL
        self.images = records[:, 1:].reshape(-1, 3, kCifarHw, kCifarHw).transpose(0, 2, 3, 1)
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        image = Image.fromarray(np.ascontiguousarray(self.images[i]), mode="RGB")
        return self.transform(image), int(self.labels[i])


def make_transforms(aug):
    resize = transforms.Resize(224, interpolation=transforms.InterpolationMode.BILINEAR)
    normalize = transforms.Normalize(kTfMean, kTfStd)
    train = [transforms.RandomHorizontalFlip()]
    if aug == "faithful":  # S0's augmentation; "flip" is the feature-cache comparison
        train.append(transforms.RandomCrop(32, padding=4))
    train += [resize, transforms.ToTensor(), normalize]
    val = [resize, transforms.ToTensor(), normalize]
    return transforms.Compose(train), transforms.Compose(val)


# ---------------------------------------------------------------------------------------------
# Model


class TfSamePad(nn.Module):
    """TensorFlow 'SAME' padding of a stride-2 3x3 convolution on even inputs: zero-pad right 1
    and bottom 1, then convolve without padding (every input here is even: 224, 112, 56, 28)."""

    def __init__(self, conv):
        super().__init__()
        conv.padding = (0, 0)
        self.conv = conv

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # (left, right, top, bottom)


class FrnVector(nn.Module):
    """FRN + TLU on (N, C): each feature is a 1x1 map, so nu^2 = x^2 and x_hat = x / sqrt(x^2 +
    eps0 + |eps_l|); y = max(gamma * x_hat + beta, tau). Matches normlab's "frn" head norm."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.tau = nn.Parameter(torch.zeros(channels))
        self.eps_l = nn.Parameter(torch.full((1,), kFrnLearnedEpsInit))

    def forward(self, x):
        # x: (N, C) -> (N, C)
        x_hat = x * torch.rsqrt(x.pow(2) + kFrnEps0 + self.eps_l.abs())
        return torch.maximum(self.weight * x_hat + self.bias, self.tau)


def make_norm(name, channels):
    if name == "bn":
        return nn.BatchNorm1d(channels)
    if name == "ln":
        return nn.LayerNorm(channels)
    if name == "frn":
        return FrnVector(channels)
    raise ValueError(f"unknown norm {name!r}")


def set_submodule(model, path, module):
    parent, _, leaf = path.rpartition(".")
    setattr(model.get_submodule(parent), leaf, module)


def build_model(weights_path, norm):
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(read_safetensors(weights_path), strict=True)
    for path in kTfSameConvs:  # after loading: the wrapper moves the weight to "<path>.conv"
        set_submodule(model, path, TfSamePad(model.get_submodule(path)))
    # S0 head in place of torchvision's Dropout -> Linear(1280, 1000).
    model.classifier = nn.Sequential(
        nn.Linear(1280, kHidden), make_norm(norm, kHidden), nn.ReLU(inplace=True),
        nn.Dropout(kDropout), nn.Linear(kHidden, 10))
    return model


class ChannelStats:
    """Per-channel count, mean and sum of squared deviations of a BN input in float64, merged
    over batches with Chan et al.'s parallel formula."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, None, None

    def add(self, x):
        # x: (N, C) or (N, C, H, W); statistics over every axis but C -> (C)
        dims = [0] + list(range(2, x.dim()))
        v = x.detach().to(torch.float64)
        n = v.numel() // v.shape[1]
        mean = v.mean(dims)
        d = v - mean.view([1, -1] + [1] * (x.dim() - 2))
        m2 = d.mul_(d).sum(dims)
        if self.count == 0:
            self.mean, self.m2 = mean, m2
        else:
            total = self.count + n
            delta = mean - self.mean
            self.mean = self.mean + delta * (n / total)
            self.m2 = self.m2 + m2 + delta.square() * (self.count * n / total)
        self.count += n

    def unbiased_var(self):
        return self.m2 / (self.count - 1)


@torch.no_grad()
def recalibrate_bn(model, loader, batches, scope):
    """The weights' BN layers were folded by TensorFlow (placeholder statistics): measure each
    BN input's real mean m and unbiased variance v on `batches` batches in one eval-mode pass,
    then set running stats to (m, v) and rewrite weight and bias so eval outputs are unchanged:
    w' = w sqrt(v + eps) / sqrt(v_old + eps), b' = b + w (m - m_old) / sqrt(v_old + eps)."""
    kinds = (nn.BatchNorm2d,) if scope == "backbone" else (nn.BatchNorm1d, nn.BatchNorm2d)
    layers = [m for m in model.modules() if isinstance(m, kinds)]
    stats = {m: ChannelStats() for m in layers}
    hooks = [m.register_forward_pre_hook(lambda mod, inp: stats[mod].add(inp[0])) for m in layers]
    model.eval()
    seen = 0
    for i, (x, _) in enumerate(loader):
        if i >= batches:
            break
        model(x)
        seen += x.shape[0]
    for h in hooks:
        h.remove()
    for bn in layers:
        s = stats[bn]
        m, v = s.mean, s.unbiased_var()
        w = bn.weight.double()
        old_std = (bn.running_var.double() + bn.eps).sqrt()
        bn.bias.copy_(bn.bias.double() + w * (m - bn.running_mean.double()) / old_std)
        bn.weight.copy_(w * (v + bn.eps).sqrt() / old_std)
        bn.running_mean.copy_(m)
        bn.running_var.copy_(v)
    return len(layers), seen


# ---------------------------------------------------------------------------------------------
# Training


def set_train_mode(model, frozen_bn):
    model.train()
    if frozen_bn == "freeze":  # frozen BNs keep their (recalibrated) statistics
        for i in range(18):  # features.0 .. features.17: everything below the trainable block
            for m in model.features[i].modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()


def train_epoch(model, loader, optimizer, trainable, args):
    set_train_mode(model, args.frozen_bn)
    loss_fn = nn.CrossEntropyLoss()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in loader:
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad()
        logits = model(x)  # (B, 10)
        loss = loss_fn(logits, y)
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, args.clip)
        optimizer.step()
        total_loss += loss.item() * y.shape[0]
        correct += (logits.argmax(1) == y).sum().item()
        seen += y.shape[0]
    return total_loss / seen, 100.0 * correct / seen, seen


@torch.no_grad()
def evaluate(model, loader, args, predictions=None):
    """Loss, accuracy (%) and image count; appends each image's predicted class to
    `predictions` (a list) when given."""
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in loader:
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x)
        total_loss += loss_fn(logits, y).item()
        predicted = logits.argmax(1)
        correct += (predicted == y).sum().item()
        seen += y.shape[0]
        if predictions is not None:
            predictions += predicted.tolist()
    return total_loss / seen, 100.0 * correct / seen, seen



# ---------------------------------------------------------------------------------------------
# Per-epoch progress and the result JSON, shared with the expert peer (s0_expert.py)


class EpochLog:
    """Per-epoch validation results and timings of one run."""

    def __init__(self, name, epochs):
        self.name, self.epochs = name, epochs
        self.train_seconds = self.val_seconds = 0.0
        self.val_accs, self.val_losses, self.val_predictions = [], [], []

    def add(self, epoch, train, val, seconds, predictions):
        """train, val: (loss, acc, images); seconds: (train, val); predictions: the epoch's."""
        (train_loss, train_acc, n_train), (val_loss, val_acc, n_val) = train, val
        t_train, t_val = seconds
        self.train_seconds += t_train
        self.val_seconds += t_val
        self.val_accs.append(val_acc)
        self.val_losses.append(val_loss)
        self.val_predictions = predictions  # the last epoch's are kept
        print(f"{self.name} epoch {epoch + 1}/{self.epochs}: train_loss {train_loss:.4f} "
              f"train_acc {train_acc:.2f} val_loss {val_loss:.4f} val_acc {val_acc:.2f}  "
              f"(train {t_train:.1f} s, {n_train / t_train:.1f} img/s; "
              f"val {t_val:.1f} s, {n_val / t_val:.1f} img/s)", flush=True)

    def result(self, args, config, train_images, val_images, setup_seconds, extra=None):
        """The result JSON (bench/s0_bench.py reads it), written to args.json when given."""
        out = {"config": config, "seed": args.seed, "threads": args.threads,
               "torch": torch.__version__, "train_images": train_images,
               "val_images": val_images, "epochs": args.epochs,
               "train_seconds": self.train_seconds, "val_seconds": self.val_seconds,
               "setup_seconds": setup_seconds}
        out.update(extra or {})
        out.update({
            "wall_seconds": time.perf_counter() - _T_START,
            "val_acc_per_epoch": self.val_accs,
            "val_loss_per_epoch": self.val_losses,
            "val_acc": self.val_accs[-1] if self.val_accs else None,
            "val_loss": self.val_losses[-1] if self.val_losses else None,
            # predicted class of each test_batch.bin image (file order) after the last epoch
            "val_predictions": self.val_predictions if self.val_accs else None,
        })
        if args.json:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w") as f:
                json.dump(out, f, indent=2)
        return out


def make_parser():
    """The command line (bench/reference/s0_expert.py extends it)."""
    here = os.path.dirname(os.path.abspath(__file__))
    shared = os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "data"))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=os.path.join(shared, "cifar-10-batches-bin"),
                   help="CIFAR-10 binary dir: data_batch_*.bin = train, test_batch.bin = val")
    p.add_argument("--weights",
                   default=os.path.join(shared, "weights",
                                        "mobilenet_v2_imagenet_tflite_qat_dequant.safetensors"))
    p.add_argument("--norm", choices=["bn", "ln", "frn"], default="bn", help="head norm")
    p.add_argument("--clip", type=float, default=0.0, help="global grad-norm clip (0 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--aug", choices=["faithful", "flip"], default="faithful",
                   help="faithful: flip + crop(32, pad 4) + resize 224; flip: no crop")
    p.add_argument("--frozen-bn", choices=["update", "freeze"], default="update",
                   help="update: model.train() everywhere (frozen BNs update running stats); "
                        "freeze: BNs of features.0..17 in eval mode")
    p.add_argument("--recalibrate-batches", type=int, default=20)
    p.add_argument("--recalibrate-scope", choices=["backbone", "all"], default="backbone",
                   help="backbone: the BatchNorm2d layers (the folded ones); all: also the "
                        "head's BatchNorm1d")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--json", help="write the result as JSON here")
    return p


def parse_args(argv=None):
    return make_parser().parse_args(argv)


def start(args):
    """Threads and seeds, as every peer sets them; returns the run's display name."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    return f"norm={args.norm} clip={args.clip:g}"


def main(argv=None):
    args = parse_args(argv)
    name = start(args)

    t_setup = time.perf_counter()
    train_files = sorted(glob.glob(os.path.join(args.data, "data_batch_*.bin")))
    val_file = os.path.join(args.data, "test_batch.bin")
    if not train_files or not os.path.exists(val_file):
        sys.exit(f"{args.data}: expected data_batch_*.bin and test_batch.bin")
    train_tf, val_tf = make_transforms(args.aug)
    train_set = CifarBinary(train_files, train_tf)
    calib_set = CifarBinary(train_files, val_tf)  # unaugmented, eval-preprocessed, file order
    val_set = CifarBinary([val_file], val_tf)
    # num_workers=0: on this 2-core machine, loader workers would take cores from the compute
    # threads (torch.set_num_threads), so decoding runs inline as part of the measured time.
    train_loader = DataLoader(train_set, batch_size=kBatch, shuffle=True, num_workers=0)
    calib_loader = DataLoader(calib_set, batch_size=kBatch, shuffle=False, num_workers=0)
    val_loader = DataLoader(val_set, batch_size=kEvalBatch, shuffle=False, num_workers=0)

    model = build_model(args.weights, args.norm)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    layers, seen = recalibrate_bn(model, calib_loader, args.recalibrate_batches,
                                  args.recalibrate_scope)

    for p in model.parameters():
        p.requires_grad_(False)
    trunk = list(model.features[18].parameters())
    head = list(model.classifier.parameters())
    trainable = trunk + head
    for p in trainable:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam([{"params": trunk, "lr": kTrunkLr},
                                  {"params": head, "lr": kHeadLr}])
    setup_seconds = time.perf_counter() - t_setup
    print(f"{name}: recalibrated {layers} BatchNorm layers on {seen} images; "
          f"{len(train_set)} train / {len(val_set)} val images; setup {setup_seconds:.1f} s",
          flush=True)

    log = EpochLog(name, args.epochs)
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        train = train_epoch(model, train_loader, optimizer, trainable, args)
        t1 = time.perf_counter()
        predictions = []
        val = evaluate(model, val_loader, args, predictions)
        log.add(epoch, train, val, (t1 - t0, time.perf_counter() - t1), predictions)

    config = {"name": name, "norm": args.norm, "clip": args.clip, "aug": args.aug,
              "frozen_bn": args.frozen_bn, "channels_last": args.channels_last,
              "recalibrate_scope": args.recalibrate_scope}
    return log.result(args, config, len(train_set), len(val_set), setup_seconds)


if __name__ == "__main__":
    main()
