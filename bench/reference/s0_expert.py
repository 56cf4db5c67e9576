#!/usr/bin/env python3
"""S0 expert peer: one configuration of STUDIES.md S0, written the way a PyTorch expert would.

Same study, same command line and same result JSON as bench/reference/s0_pytorch.py (the
naive peer), whose pieces it imports (model building with TF 'SAME' padding and the S0 head,
the safetensors reader, BN recalibration, the CIFAR binary reader, the train/eval BN modes).
The same semantic choices: (pixel - 128) / 128 input scaling, BN recalibration on the first
20 unaugmented training batches of 64 in file order, features.18 at lr 1e-5 and the head at
1e-3 with Adam, batch 64, validation with batch 256 every epoch, --frozen-bn update (every
BN in train mode: batch statistics, running statistics updated) or freeze (the BNs of
features.0-17 in eval mode). What differs is how the work is done:

  data      the CIFAR binary is decoded once into a uint8 tensor (N, 3, 32, 32); flip and
            crop (zero padding 4) are done on the uint8 batch, then one bilinear
            F.interpolate to 224 (align_corners=False) and the normalization on the batch:
            no Dataset, DataLoader or PIL. The resize is done as PIL does it on 8-bit
            images (width pass, round, height pass, round), so the network sees bit-identical
            inputs: the trunk is sensitive to sub-grey-level changes (a float resize without
            the rounding changes the recalibrated features.17 output by ~15% relative L2).
  trunk     features.0-17 are frozen: they run under torch.no_grad() in channels_last, in
            train mode for --frozen-bn update and eval mode for freeze, and only features.18
            + the head run with autograd. One model per configuration (one process each).
  cache     with --aug flip --frozen-bn freeze the frozen trunk is a fixed function of the
            image: its output (features.17, float32, (320, 7, 7) per view) is computed once
            per training image and flip view (2 views) and once per validation image, kept in
            memory, and features.18 + the head train on it; each epoch every image takes
            the flipped view with probability 1/2 (RandomHorizontalFlip). cache_seconds and
            cache_images are reported separately; wall_seconds includes them.

  /usr/bin/python3 bench/reference/s0_expert.py --data DIR --norm bn --clip 0.1 --epochs 3 \\
      --threads 2 --aug flip --frozen-bn freeze --json out.json
"""

import time

_T_START = time.perf_counter()  # before the heavy imports: wall_seconds covers them too

import glob
import itertools
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s0_pytorch as naive  # noqa: E402  (the naive peer: model, weights, recalibration)

kSize = 224
kCropPadding = 4
kFrozenBlocks = 18  # features.0 .. features.17 are frozen; features.18 and the head train
kCl = torch.channels_last


# ---------------------------------------------------------------------------------------------
# Data: uint8 tensors, batched augmentation and preprocessing


def load_cifar(files):
    """CIFAR binary files -> (images (N, 3, 32, 32) uint8, labels (N) int64), file order."""
    ds = naive.CifarBinary(files, transform=None)  # decodes the records (N, 32, 32, 3 view)
    images = torch.from_numpy(np.array(ds.images.transpose(0, 3, 1, 2), copy=True))
    return images, torch.from_numpy(ds.labels.copy())


def augment(x, crop):
    """RandomHorizontalFlip (p = 1/2) then, if crop, RandomCrop(32, padding=4) with zero
    fill, each image drawn independently: (B, 3, 32, 32) uint8 -> same shape."""
    b, _, h, w = x.shape
    flip = torch.rand(b) < 0.5
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(3), x)
    if crop:
        padded = F.pad(x, (kCropPadding,) * 4)  # (B, 3, 40, 40)
        top = torch.randint(0, 2 * kCropPadding + 1, (b,))
        left = torch.randint(0, 2 * kCropPadding + 1, (b,))
        rows = (top.view(b, 1) + torch.arange(h)).view(b, 1, h, 1)
        cols = (left.view(b, 1) + torch.arange(w)).view(b, 1, 1, w)
        x = padded[torch.arange(b).view(b, 1, 1, 1), torch.arange(3).view(1, 3, 1, 1), rows, cols]
    return x


def to_input(x):
    """(B, 3, 32, 32) uint8 -> (B, 3, 224, 224) float32 in channels_last, exactly as the naive
    peer's PIL Resize(224, BILINEAR) + ToTensor + Normalize: PIL resizes an 8-bit image in
    two passes, width then height, each rounded to uint8 (same bilinear weights as
    F.interpolate with align_corners=False), then (x/255 - 128/255) / (128/255)."""
    x = x.float().contiguous(memory_format=kCl)
    x = F.interpolate(x, size=(x.shape[2], kSize), mode="bilinear", align_corners=False)
    x = F.interpolate(x.round_(), size=(kSize, kSize), mode="bilinear", align_corners=False)
    return x.round_().div_(255.0).sub_(naive.kTfMean[0]).div_(naive.kTfStd[0])


def batches(n, size, order=None):
    """Index tensors of consecutive batches of `size` over range(n) or over `order`; the last
    one may be smaller (as DataLoader with drop_last=False)."""
    order = torch.arange(n) if order is None else order
    for start in range(0, n, size):
        yield order[start:start + size]


# ---------------------------------------------------------------------------------------------
# Model pieces


class Split:
    """The naive peer's model cut into the frozen trunk (features.0-17) and the trained tail
    (features.18, global average pool, head), as MobileNetV2's own forward."""

    def __init__(self, model):
        self.model = model
        self.trunk = model.features[:kFrozenBlocks]
        self.block = model.features[kFrozenBlocks]

    @torch.no_grad()
    def trunk_forward(self, x):
        return self.trunk(x)  # (B, 320, 7, 7)

    def tail_forward(self, f):
        z = self.block(f)  # (B, 1280, 7, 7)
        z = torch.flatten(F.adaptive_avg_pool2d(z, (1, 1)), 1)
        return self.model.classifier(z)  # (B, 10)


def step(split, optimizer, trainable, f, y, clip):
    """One optimizer step of the tail on trunk features f: returns (loss sum, correct)."""
    optimizer.zero_grad(set_to_none=True)
    logits = split.tail_forward(f)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(trainable, clip)
    optimizer.step()
    return loss.item() * y.shape[0], (logits.argmax(1) == y).sum().item()


# ---------------------------------------------------------------------------------------------
# The two ways of training


def train_epoch_trunk(split, optimizer, trainable, images, labels, args):
    """faithful (and any mode without a cache): augment, trunk without autograd, tail step."""
    naive.set_train_mode(split.model, args.frozen_bn)  # update: trunk BNs in train mode
    total_loss, correct = 0.0, 0
    for idx in batches(len(labels), naive.kBatch, torch.randperm(len(labels))):
        x = to_input(augment(images[idx], crop=args.aug == "faithful"))
        f = split.trunk_forward(x)
        loss, right = step(split, optimizer, trainable, f, labels[idx], args.clip)
        total_loss += loss
        correct += right
    n = len(labels)
    return total_loss / n, 100.0 * correct / n, n


@torch.no_grad()
def build_cache(split, images, flips):
    """features.17 outputs (eval mode) of `images` for each flip in `flips`: a list of
    (N, 320, 7, 7) float32 channels_last tensors."""
    split.model.eval()
    out = []
    for flip in flips:
        feats = None
        for idx in batches(len(images), naive.kEvalBatch):
            x = images[idx]
            f = split.trunk_forward(to_input(x.flip(3) if flip else x))
            if feats is None:
                feats = torch.empty((len(images),) + tuple(f.shape[1:]), memory_format=kCl)
            feats[idx[0]:idx[-1] + 1] = f
        out.append(feats)
    return out


def train_epoch_cache(split, optimizer, trainable, views, labels, args):
    """cache: each image takes its flipped view with probability 1/2, then a tail step."""
    naive.set_train_mode(split.model, args.frozen_bn)  # features.18 and the head train mode
    plain, flipped = views
    n = len(labels)
    flip = torch.rand(n) < 0.5
    total_loss, correct = 0.0, 0
    for idx in batches(n, naive.kBatch, torch.randperm(n)):
        f = torch.where(flip[idx].view(-1, 1, 1, 1), flipped[idx], plain[idx])
        loss, right = step(split, optimizer, trainable, f.contiguous(memory_format=kCl),
                           labels[idx], args.clip)
        total_loss += loss
        correct += right
    return total_loss / n, 100.0 * correct / n, n


@torch.no_grad()
def evaluate(split, labels, features_of, predictions):
    """Eval mode, batches of 256: features_of(idx) gives the trunk output of those images."""
    split.model.eval()
    total_loss, correct = 0.0, 0
    for idx in batches(len(labels), naive.kEvalBatch):
        logits = split.tail_forward(features_of(idx))
        y = labels[idx]
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        predicted = logits.argmax(1)
        correct += (predicted == y).sum().item()
        predictions += predicted.tolist()
    n = len(labels)
    return total_loss / n, 100.0 * correct / n, n


# ---------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = naive.make_parser()
    p.description = __doc__.split("\n\n")[0]
    # Always channels_last here; the naive peer's flag is kept so both take the same options.
    p.set_defaults(channels_last=True)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    name = naive.start(args)
    use_cache = args.aug == "flip" and args.frozen_bn == "freeze"

    t_setup = time.perf_counter()
    train_files = sorted(glob.glob(os.path.join(args.data, "data_batch_*.bin")))
    val_file = os.path.join(args.data, "test_batch.bin")
    if not train_files or not os.path.exists(val_file):
        sys.exit(f"{args.data}: expected data_batch_*.bin and test_batch.bin")
    train_images, train_labels = load_cifar(train_files)
    val_images, val_labels = load_cifar([val_file])

    model = naive.build_model(args.weights, args.norm).to(memory_format=kCl)
    # The naive peer's recalibration on the same batches: the first 20 batches of 64 of the
    # training set in file order, unaugmented (resize + normalization only).
    calib = ((to_input(train_images[idx]), train_labels[idx])
             for idx in batches(len(train_labels), naive.kBatch))
    layers, seen = naive.recalibrate_bn(model, itertools.islice(calib, args.recalibrate_batches),
                                        args.recalibrate_batches, args.recalibrate_scope)
    for p in model.parameters():
        p.requires_grad_(False)
    trunk_params = list(model.features[kFrozenBlocks].parameters())
    head_params = list(model.classifier.parameters())
    trainable = trunk_params + head_params
    for p in trainable:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam([{"params": trunk_params, "lr": naive.kTrunkLr},
                                  {"params": head_params, "lr": naive.kHeadLr}])
    split = Split(model)
    setup_seconds = time.perf_counter() - t_setup
    print(f"{name}: recalibrated {layers} BatchNorm layers on {seen} images; "
          f"{len(train_labels)} train / {len(val_labels)} val images; setup "
          f"{setup_seconds:.1f} s", flush=True)

    cache_seconds, cache_images = 0.0, 0
    if use_cache:
        t0 = time.perf_counter()
        train_views = build_cache(split, train_images, (False, True))
        (val_features,) = build_cache(split, val_images, (False,))
        cache_seconds = time.perf_counter() - t0
        cache_images = 2 * len(train_labels) + len(val_labels)
        megabytes = sum(t.numel() * t.element_size() for t in train_views + [val_features]) / 1e6
        print(f"{name}: trunk features of {cache_images} image views in {cache_seconds:.1f} s "
              f"({cache_images / cache_seconds:.1f} views/s, {megabytes:.0f} MB)", flush=True)
        features_of = lambda idx: val_features[idx]  # noqa: E731
    else:
        features_of = lambda idx: split.trunk_forward(to_input(val_images[idx]))  # noqa: E731

    log = naive.EpochLog(name, args.epochs)
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        if use_cache:
            train = train_epoch_cache(split, optimizer, trainable, train_views, train_labels,
                                      args)
        else:
            train = train_epoch_trunk(split, optimizer, trainable, train_images, train_labels,
                                      args)
        t1 = time.perf_counter()
        predictions = []
        val = evaluate(split, val_labels, features_of, predictions)
        log.add(epoch, train, val, (t1 - t0, time.perf_counter() - t1), predictions)

    config = {"name": name, "norm": args.norm, "clip": args.clip, "aug": args.aug,
              "frozen_bn": args.frozen_bn, "channels_last": True,
              "recalibrate_scope": args.recalibrate_scope, "feature_cache": use_cache}
    return log.result(args, config, len(train_labels), len(val_labels), setup_seconds,
                      {"peer": "expert", "cache_seconds": cache_seconds,
                       "cache_images": cache_images})


if __name__ == "__main__":
    main()
