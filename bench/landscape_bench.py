#!/usr/bin/env python3
"""Head-only 2-D loss landscape: normlab vs a PyTorch reference computed the way Li et al.'s
plot_surface.py computes it, same machine, same threads, same directions.

The landscape (issue 12; Li et al., "Visualizing the Loss Landscape of Neural Nets", 2018):
MobileNetV2 with the shared ImageNet weights (TFLite-converted, ../shared/data), S1's head
(Linear 1280->256, BatchNorm, ReLU, Dropout, Linear 256->10) trained one epoch on a few
CIFAR-10 images with the backbone frozen, then loss(theta + a d1 + b d2) for the head's
parameters on a RESOLUTION x RESOLUTION grid over [-1, 1]^2, on the first IMAGES images of the
CIFAR-10 test set at 224 px.

  normlab    `normlab study run bench/landscape_bench.toml` (the probe "landscape" with
             save_directions = true; data.feature_cache = "off"): the frozen trunk runs once
             over the images, then the head alone per grid point. Its time is the probe's own
             (time/landscape_s in the store: the trunk pass included).
  reference  torchvision's mobilenet_v2 with normlab's final weights loaded, a DataLoader over
             the CIFAR binary with PIL transforms (Resize 224 bilinear, ToTensor, Normalize),
             and for each grid point: set the head's parameters to origin + a d1 + b d2
             (normlab's exported directions), then the whole network over the loader
             (plot_surface.py's crunch() -> evaluation.eval_loss()).

It prints both times and their ratio (target >= 100x), and the largest relative difference of
the loss values over the grid points the reference evaluated (must be <= 1e-3). The exit
status is non-zero when they disagree or a step fails.

  /usr/bin/python3 bench/landscape_bench.py --threads 2                 # 21x21, ~1 h
  /usr/bin/python3 bench/landscape_bench.py --threads 2 --ref-points 25 # reference on 25 of
                                                                        # 441 points, projected
"""

import argparse
import json
import math
import os
import sqlite3
import struct
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import s0_pytorch  # noqa: E402  (the S0 peers' model builder, safetensors reader, CIFAR reader)

kRepo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
kShared = os.path.normpath(os.path.join(kRepo, "..", "shared", "data"))
kRecord = s0_pytorch.kCifarRecord
kTrainPerFile = 64  # 5 x 64 = 320 training images: the head only needs to be trained a bit


def make_cifar_subset(src, dst, test_images):
    """A CIFAR-10 binary directory with 64 records per training file and the first
    `test_images` records of the test file, so both sides see the same images in order."""
    os.makedirs(dst, exist_ok=True)
    for i in range(1, 6):
        with open(os.path.join(src, f"data_batch_{i}.bin"), "rb") as f:
            data = f.read(kTrainPerFile * kRecord)
        with open(os.path.join(dst, f"data_batch_{i}.bin"), "wb") as f:
            f.write(data)
    with open(os.path.join(src, "test_batch.bin"), "rb") as f:
        data = f.read(test_images * kRecord)
    if len(data) != test_images * kRecord:
        sys.exit(f"{src}/test_batch.bin has fewer than {test_images} images")
    with open(os.path.join(dst, "test_batch.bin"), "wb") as f:
        f.write(data)
    meta = os.path.join(src, "batches.meta.txt")
    if os.path.exists(meta):
        with open(meta, "rb") as f, open(os.path.join(dst, "batches.meta.txt"), "wb") as g:
            g.write(f.read())


def run_normlab(args, data_dir, out_dir):
    cmd = [args.normlab, "study", "run", os.path.join(kRepo, "bench", "landscape_bench.toml"),
           "--out", out_dir, "--threads", str(args.threads), "--no-report",
           "--set", f"data.path={data_dir}",
           "--set", f"model.weights={args.weights}",
           "--set", f"probe.landscape.resolution={args.resolution}",
           "--set", f"probe.landscape.images={args.images}"]
    print("normlab:", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    rc = subprocess.run(cmd).returncode
    wall = time.perf_counter() - t0
    if rc != 0:
        sys.exit(f"normlab failed (exit {rc})")
    db = sqlite3.connect(f"file:{os.path.join(out_dir, 'study.db')}?mode=ro", uri=True)
    (run_id, config_hash), = db.execute("SELECT id, config_hash FROM runs").fetchall()
    seconds = []
    for (blob,) in db.execute("SELECT vals FROM series WHERE run_id = ? AND axis = 'epoch' AND "
                              "name = 'time/landscape_s' ORDER BY epoch", (run_id,)):
        seconds += struct.unpack(f"<{len(blob) // 8}d", blob)
    if not seconds:
        sys.exit("normlab's store has no time/landscape_s")
    run_dir = os.path.join(out_dir, "runs", config_hash[:16])
    return run_dir, seconds[-1], wall, db, run_id


def normlab_surface(db, run_id):
    rows = db.execute("SELECT json FROM artifacts WHERE run_id = ? AND name = 'landscape' "
                      "AND kind = 'surface' ORDER BY epoch DESC LIMIT 1", (run_id,)).fetchall()
    if not rows:
        sys.exit("normlab's store has no landscape")
    return json.loads(rows[0][0])


def reference_model(run_dir):
    """torchvision's mobilenet_v2 + the S0/S1 head with normlab's final weights."""
    state = s0_pytorch.read_safetensors(os.path.join(run_dir, "model.safetensors"))
    model = torchvision_model()
    mapped = {}
    for name, tensor in state.items():
        mapped[name.replace("head.", "classifier.", 1) if name.startswith("head.") else name] = tensor
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if missing or unexpected:
        sys.exit(f"normlab's weights do not fit the reference: missing {missing}, "
                 f"unexpected {unexpected}")
    for path in s0_pytorch.kTfSameConvs:
        s0_pytorch.set_submodule(model, path,
                                 s0_pytorch.TfSamePad(model.get_submodule(path)))
    return model.eval()


def torchvision_model():
    import torchvision
    model = torchvision.models.mobilenet_v2()
    model.classifier = torch.nn.Sequential(
        torch.nn.Linear(1280, s0_pytorch.kHidden), torch.nn.BatchNorm1d(s0_pytorch.kHidden),
        torch.nn.ReLU(inplace=True), torch.nn.Dropout(s0_pytorch.kDropout),
        torch.nn.Linear(s0_pytorch.kHidden, 10))
    return model


def eval_loss(model, loader):
    """Li et al.'s evaluation.eval_loss: mean cross-entropy over the loader, in eval mode."""
    total, n = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            total += loss.item() * y.size(0)
            n += y.size(0)
    return total / n


def grid_points(resolution, count):
    """Indices (i, j) the reference evaluates: all, or `count` spread evenly over the grid in
    row-major order, the centre included."""
    every = [(i, j) for i in range(resolution) for j in range(resolution)]
    if count <= 0 or count >= len(every):
        return every
    c = resolution // 2
    picked = [(c, c)]
    for k in range(count):
        p = every[round(k * (len(every) - 1) / max(count - 1, 1))]
        if len(picked) < count and p not in picked:
            picked.append(p)
    for p in every:  # collisions with the centre: fill up in order
        if len(picked) >= count:
            break
        if p not in picked:
            picked.append(p)
    return picked


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--resolution", type=int, default=21)
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--ref-points", type=int, default=0,
                   help="evaluate the reference on this many grid points and project its time "
                        "to the whole grid (0 = every point)")
    p.add_argument("--batch", type=int, default=128, help="reference loader batch (Li et al.)")
    p.add_argument("--data", default=os.path.join(kShared, "cifar-10-batches-bin"))
    p.add_argument("--weights", default=os.path.join(
        kShared, "weights", "mobilenet_v2_imagenet_tflite_qat_dequant.safetensors"))
    p.add_argument("--normlab", default=os.path.join(kRepo, "build", "release", "normlab"))
    p.add_argument("--work", default="/tmp/normlab-landscape-bench")
    args = p.parse_args()
    args.weights = os.path.abspath(args.weights)
    torch.set_num_threads(args.threads)

    data_dir = os.path.join(args.work, "cifar")
    out_dir = os.path.join(args.work, "normlab")
    subprocess.run(["rm", "-rf", out_dir], check=True)
    make_cifar_subset(args.data, data_dir, args.images)
    run_dir, normlab_s, normlab_wall, db, run_id = run_normlab(args, data_dir, out_dir)
    surface = normlab_surface(db, run_id)
    xs, ys, zs = surface["x"], surface["y"], surface["z"]
    print(f"normlab: landscape {normlab_s:.2f} s (process {normlab_wall:.1f} s, training "
          f"included)", flush=True)

    directions = s0_pytorch.read_safetensors(os.path.join(run_dir,
                                                          "landscape-directions.safetensors"))
    model = reference_model(run_dir)
    names = sorted(k[len("origin/"):] for k in directions if k.startswith("origin/"))
    params = {n: model.get_parameter(n.replace("head.", "classifier.", 1)) for n in names}
    for n in names:
        if not torch.equal(params[n].detach(), directions["origin/" + n]):
            sys.exit(f"the reference's {n} is not normlab's landscape centre")
    _, val_tf = s0_pytorch.make_transforms("flip")
    # Both sides normalise as data.normalize = "tf-128" says: (pixel - 128) / 128.
    test = s0_pytorch.CifarBinary([os.path.join(data_dir, "test_batch.bin")], val_tf)
    loader = DataLoader(test, batch_size=args.batch, shuffle=False, num_workers=0)

    points = grid_points(len(xs), args.ref_points)
    worst, worst_at = 0.0, None
    t0 = time.perf_counter()
    with torch.no_grad():
        for k, (i, j) in enumerate(points):
            for n in names:
                params[n].copy_(directions["origin/" + n] + xs[j] * directions["d1/" + n] +
                                ys[i] * directions["d2/" + n])
            loss = eval_loss(model, loader)
            rel = abs(loss - zs[i][j]) / max(abs(zs[i][j]), 1e-12)
            if rel > worst:
                worst, worst_at = rel, (xs[j], ys[i], loss, zs[i][j])
            if k % 10 == 0:
                print(f"  reference point {k + 1}/{len(points)}: loss {loss:.5f} "
                      f"(normlab {zs[i][j]:.5f}) {time.perf_counter() - t0:.0f} s", flush=True)
    ref_s = time.perf_counter() - t0
    total = len(xs) * len(ys)
    projected = ref_s / len(points) * total
    print()
    print(f"grid {len(xs)} x {len(ys)}, {args.images} images, {args.threads} threads")
    print(f"normlab landscape      {normlab_s:10.2f} s")
    if len(points) == total:
        print(f"reference landscape    {ref_s:10.2f} s")
    else:
        print(f"reference landscape    {projected:10.2f} s  (projected: {ref_s:.1f} s measured "
              f"on {len(points)} of {total} points)")
    print(f"ratio                  {projected / normlab_s:10.1f} x  (target >= 100 x)")
    print(f"largest relative loss difference over {len(points)} points: {worst:.2e}"
          + (f" at alpha {worst_at[0]:+.2f}, beta {worst_at[1]:+.2f} (reference "
             f"{worst_at[2]:.6f}, normlab {worst_at[3]:.6f})" if worst_at else ""))
    result = {"normlab_s": normlab_s, "reference_s": ref_s, "reference_points": len(points),
              "grid_points": total, "reference_projected_s": projected,
              "ratio": projected / normlab_s, "max_rel_diff": worst, "images": args.images,
              "threads": args.threads}
    with open(os.path.join(args.work, "landscape_bench.json"), "w") as f:
        json.dump(result, f, indent=2)
    if not math.isfinite(worst) or worst > 1e-3:
        print("FAIL: the loss values disagree by more than 1e-3 relative")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
