#!/usr/bin/env python3
"""Where normlab's S0 time goes: the faithful-mode training loop split into batches
(decode, augmentation, resize), the shared frozen prefix (features.0-17), the six tails
(features.18 + head, forward and backward) and the store, and the cache build, each in
GFLOP/s against this machine's measured oneDNN convolution rate.

  /usr/bin/python3 bench/profile_s0.py --threads 2                # 500 train / 200 val, 1 epoch
  /usr/bin/python3 bench/profile_s0.py --threads 2 --train 1000 --epochs 2

The machine's rate is measured here with Debian's python3-torch (the same oneDNN build as
libtorch): a dense 3x3 convolution (128 -> 128 channels, 56x56, batch 8, NHWC) and a
pointwise 1x1 one (MobileNetV2's most common layer: 96 -> 576, 28x28), forward only, under
no_grad. FLOPs are counted (2 per multiply-add) by hooks on torchvision's MobileNetV2 at
224x224 for features.0-17 and for features.18 + the S0 head; a training step of a tail is
counted as 3x its forward (forward, input and weight gradients). normlab's phase times come
from meta "engine_timing" of its study.db (src/study/engine_timing.h).
"""

import argparse
import json
import os
import shutil
import sqlite3
import sys
import time

import torch
import torch.nn as nn
import torchvision

import s0_bench

kHidden = 256


def conv_rate(threads, repeats=5):
    """GFLOP/s of a dense 3x3 and a pointwise conv, best of `repeats`."""
    torch.set_num_threads(threads)
    out = {}
    cases = {"dense 3x3 (128->128, 56x56, batch 8)": (128, 128, 3, 56, 8),
             "pointwise 1x1 (96->576, 28x28, batch 8)": (96, 576, 1, 28, 8)}
    with torch.no_grad():
        for name, (cin, cout, k, hw, n) in cases.items():
            conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False).to(
                memory_format=torch.channels_last)
            x = torch.randn(n, cin, hw, hw).to(memory_format=torch.channels_last)
            flops = 2.0 * n * cout * hw * hw * cin * k * k
            conv(x)
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(5):
                    conv(x)
                best = min(best, (time.perf_counter() - t0) / 5)
            out[name] = flops / best / 1e9
    return out


def mobilenet_flops():
    """Forward FLOPs per 224x224 image: features.0-17, and features.18 + the S0 head."""
    model = torchvision.models.mobilenet_v2()
    model.classifier = nn.Sequential(nn.Linear(1280, kHidden), nn.BatchNorm1d(kHidden),
                                     nn.ReLU(), nn.Dropout(0.2), nn.Linear(kHidden, 10))
    model.eval()
    counts = {"prefix": 0.0, "tail": 0.0}
    stage = {"name": "prefix"}

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            per_out = module.in_channels // module.groups * module.kernel_size[0] * \
                module.kernel_size[1]
            counts[stage["name"]] += 2.0 * output.numel() * per_out
        elif isinstance(module, nn.Linear):
            counts[stage["name"]] += 2.0 * output.numel() * module.in_features

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        x = torch.zeros(1, 3, 224, 224)
        for i, block in enumerate(model.features):
            stage["name"] = "prefix" if i < 18 else "tail"
            x = block(x)
        stage["name"] = "tail"
        model.classifier(x.mean((2, 3)))
    return counts


def engine_timing(out_dir):
    con = sqlite3.connect(os.path.join(out_dir, "study.db"))
    row = con.execute("SELECT value FROM meta WHERE key = 'engine_timing'").fetchone()
    con.close()
    if row is None:
        sys.exit(f"{out_dir}/study.db has no engine_timing")
    return json.loads(row[0])


def run(args, mode, data_dir):
    out_dir = os.path.join(args.work, f"normlab-{mode}")
    shutil.rmtree(out_dir, ignore_errors=True)
    env = s0_bench.thread_env(args.threads)
    if mode == "cache":
        cache_root = os.path.join(args.work, "normlab-cache-root")
        shutil.rmtree(cache_root, ignore_errors=True)
        env["NORMLAB_CACHE"] = cache_root
    cmd = s0_bench.normlab_command(args, mode, data_dir, out_dir, [0])
    rc, wall = s0_bench.run_logged(cmd, os.path.join(args.work, f"normlab-{mode}.log"), env)
    if rc != 0:
        sys.exit(f"normlab failed in {mode} mode (log: {args.work}/normlab-{mode}.log)")
    t = engine_timing(out_dir)
    t["wall_seconds"] = wall
    return t


def gflops(flop, seconds):
    return flop / seconds / 1e9 if seconds > 0 else float("nan")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train", type=int, default=500)
    p.add_argument("--val", type=int, default=200)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--work", default="/tmp/normlab-profile")
    p.add_argument("--normlab", default=os.path.join(s0_bench.kRepo, "build", "release",
                                                      "normlab"))
    p.add_argument("--study", default=os.path.join(s0_bench.kRepo, "studies",
                                                    "s0_norm_heads.toml"))
    p.add_argument("--data", default=os.path.join(s0_bench.kShared, "cifar-10-batches-bin"))
    p.add_argument("--weights", default=os.path.join(
        s0_bench.kShared, "weights", "mobilenet_v2_imagenet_tflite_qat_dequant.safetensors"))
    args = p.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    data_dir = os.path.join(args.work, "cifar")
    s0_bench.write_subset(args.data, data_dir, args.train, args.val)

    rates = conv_rate(args.threads)
    flops = mobilenet_flops()
    configs = len(s0_bench.kNorms) * len(s0_bench.kClips)
    print(f"machine, {args.threads} threads (python3-torch {torch.__version__}, oneDNN):")
    for name, r in rates.items():
        print(f"  {name:42s} {r:7.1f} GFLOP/s")
    peak = max(rates.values())
    print(f"per 224x224 image: features.0-17 {flops['prefix'] / 1e9:.3f} GFLOP forward, "
          f"features.18 + head {flops['tail'] / 1e9:.3f} GFLOP forward "
          f"(x3 for a training step)")

    results = {"rates": rates, "flops": flops}
    for mode in ("faithful", "cache"):
        t = run(args, mode, data_dir)
        results[mode] = t
        images = args.train * args.epochs  # per run; the prefix runs once for the group
        rows = []
        if mode == "faithful":
            rows.append(("batches (decode, augment, resize)", t["batch_seconds"], None))
            rows.append(("prefix features.0-17 (once per batch)", t["prefix_seconds"],
                         flops["prefix"] * images))
        else:
            rows.append(("cache build (features.0-17, 2 views + val)", t["cache_seconds"],
                         flops["prefix"] * t["cache_images"]))
            rows.append(("cached features read", t["batch_seconds"], None))
        rows.append((f"tails x{configs} (features.18 + head, step)", t["step_seconds"],
                     3 * flops["tail"] * images * configs))
        rows.append(("store (records, checkpoints)", t["store_seconds"], None))
        rows.append(("evaluation (all runs)", t["eval_seconds"], None))
        other = t["train_seconds"] - t["batch_seconds"] - t["prefix_seconds"] - \
            t["step_seconds"]
        rows.append(("training loop, rest", other, None))
        print(f"\n{mode} mode ({args.train} train / {args.val} val images, {args.epochs} "
              f"epoch(s), {configs} configurations, seed 0; wall {t['wall_seconds']:.1f} s, "
              f"setup {t['setup_seconds']:.1f} s):")
        print(f"  {'phase':46s} {'seconds':>8s} {'GFLOP/s':>8s} {'of peak':>8s}")
        for name, seconds, flop in rows:
            if flop is None:
                print(f"  {name:46s} {seconds:8.2f}")
            else:
                g = gflops(flop, seconds)
                print(f"  {name:46s} {seconds:8.2f} {g:8.1f} {100 * g / peak:7.0f}%")
    with open(os.path.join(args.work, "profile.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nraw numbers: {args.work}/profile.json")


if __name__ == "__main__":
    main()
