#!/usr/bin/env python3
"""S0 benchmark: normlab vs a plain PyTorch/torchvision reference, same machine, same threads.

Runs the S0 study shape (3 head norms x {no clip, clip 0.1} = 6 configurations) at reduced
size on real CIFAR-10 with the TFLite-converted ImageNet MobileNetV2, once with normlab and
once with bench/reference/s0_pytorch.py (one process per configuration and seed), in two
modes:
  faithful  S0's augmentation: flip + crop 32 (padding 4) + resize to 224, every epoch;
  cache     flip only, frozen BNs in eval mode: normlab may serve the frozen trunk from its
            feature cache (data.feature_cache = require); the reference recomputes it.
It prints measured images/s and wall-clock of each, the measured ratio, the ratio projected
to the full S0 study (40,000 train + 10,000 val images, 15 epochs, 6 configurations), and
whether the mean validation accuracies per configuration agree within the seed spread.

  /usr/bin/python3 bench/s0_bench.py --threads 2                                # ~1.5 h
  /usr/bin/python3 bench/s0_bench.py --threads 2 --train 500 --val 200 --epochs 1  # quick

Everything is also written to WORK/bench.json (WORK = --work, default /tmp/normlab-bench).
"""

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import time

kRepo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
kShared = os.path.normpath(os.path.join(kRepo, "..", "shared", "data"))

# CIFAR-10 binary layout: 1 label byte + 32x32x3 bytes per record, 10 classes, 5 training
# files (https://www.cs.toronto.edu/~kriz/cifar.html).
kRecord = 1 + 3 * 32 * 32
kClasses = 10
kTrainFiles = 5

# The S0 grid (studies/s0_norm_heads.toml) and the full study it is projected to
# (STUDIES.md S0: 80/20 split of the 50k training set, 15 epochs).
kNorms = ["bn", "ln", "frn"]
kClips = [0.0, 0.1]
kFullConfigs = 6
kFullEpochs = 15
kFullTrain = 40000
kFullVal = 10000
kCacheViewsPerTrain = 2  # the cache holds each training image and its horizontal flip

# Targets of the projected full-study ratio reference/normlab on the 2-core CPU (the issue).
kTargets = {"faithful": 8.0, "cache": 30.0}

kModes = {
    "faithful": {
        "title": "faithful (flip + crop + resize 224 every epoch; frozen_bn update)",
        "reference": ["--aug", "faithful", "--frozen-bn", "update"],
        "normlab": [],
    },
    "cache": {
        "title": "feature cache (flip only; frozen_bn freeze)",
        "reference": ["--aug", "flip", "--frozen-bn", "freeze"],
        "normlab": ["data.augment.crop_padding=0", "train.frozen_bn=freeze",
                    "data.feature_cache=require"],
    },
}

kFormula = ("T = 6 configs * 15 epochs * (40000 / R_train + 10000 / R_val)"
            " [+ cache_seconds * (40000*2 + 10000) / cache_images, normlab cache mode only]"
            "; R_* = measured config-images per second; projected ratio = T_reference / T_normlab")


def config_name(norm, clip):
    return f"norm={norm} clip={clip:g}"


# ---------------------------------------------------------------------------------------------
# (a) The reduced data set


def read_records(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) == 0 or len(raw) % kRecord != 0:
        sys.exit(f"{path}: {len(raw)} bytes is not a whole number of {kRecord}-byte records")
    return [raw[i:i + kRecord] for i in range(0, len(raw), kRecord)]


def first_per_class(records, per_class, what):
    """The first `per_class` records of each class, kept in file order."""
    taken = [0] * kClasses
    out = []
    for r in records:
        label = r[0]
        if taken[label] < per_class:
            taken[label] += 1
            out.append(r)
    if min(taken) < per_class:
        sys.exit(f"{what}: wanted {per_class} images per class, found only {taken}")
    return out


def write_subset(src, dst, n_train, n_val):
    """Stratified subset in the official layout: data_batch_1..5.bin (n_train/5 records each,
    n_train/10 per class, the first ones in official order) and test_batch.bin (n_val/10 per
    class; the shared test_batch.bin is sorted by class, so take per class, not a prefix)."""
    if n_train <= 0 or n_train % kClasses != 0:
        sys.exit(f"--train {n_train}: must be a positive multiple of {kClasses}")
    if n_val <= 0 or n_val % kClasses != 0:
        sys.exit(f"--val {n_val}: must be a positive multiple of {kClasses}")
    train = []
    for k in range(1, kTrainFiles + 1):
        train += read_records(os.path.join(src, f"data_batch_{k}.bin"))
    train = first_per_class(train, n_train // kClasses, "training set")
    val = first_per_class(read_records(os.path.join(src, "test_batch.bin")), n_val // kClasses,
                          "test_batch.bin")

    os.makedirs(dst, exist_ok=True)
    per_file = n_train // kTrainFiles
    for k in range(kTrainFiles):
        with open(os.path.join(dst, f"data_batch_{k + 1}.bin"), "wb") as f:
            f.write(b"".join(train[k * per_file:(k + 1) * per_file]))
    with open(os.path.join(dst, "test_batch.bin"), "wb") as f:
        f.write(b"".join(val))
    meta = os.path.join(src, "batches.meta.txt")
    if os.path.exists(meta):
        shutil.copyfile(meta, os.path.join(dst, "batches.meta.txt"))
    check_subset(dst, n_train, n_val)


def check_subset(dst, n_train, n_val):
    """What normlab's CIFAR reader needs: non-empty files of whole records."""
    counts = {}
    names = [f"data_batch_{k}.bin" for k in range(1, kTrainFiles + 1)] + ["test_batch.bin"]
    for name in names:
        size = os.path.getsize(os.path.join(dst, name))
        if size == 0 or size % kRecord != 0:
            sys.exit(f"{dst}/{name}: {size} bytes is not a non-empty whole number of records")
        counts[name] = size // kRecord
    if sum(counts[n] for n in names[:-1]) != n_train or counts["test_batch.bin"] != n_val:
        sys.exit(f"{dst}: record counts {counts} do not add up to {n_train} + {n_val}")


# ---------------------------------------------------------------------------------------------
# Subprocesses


def run_logged(cmd, log_path, env=None):
    """Runs cmd, echoing its output and writing it to log_path; returns (rc, wall seconds)."""
    print("$ " + " ".join(quote(c) for c in cmd), flush=True)
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env=env, text=True, bufsize=1)
        except OSError as e:
            print(f"  cannot start: {e}", flush=True)
            log.write(f"cannot start: {e}\n")
            return 127, 0.0
        for line in proc.stdout:
            sys.stdout.write("  " + line)
            sys.stdout.flush()
            log.write(line)
        rc = proc.wait()
    wall = time.perf_counter() - t0
    if rc != 0:
        print(f"  exit status {rc} (log: {log_path})", flush=True)
    return rc, wall


def quote(s):
    return s if s and all(c.isalnum() or c in "-_./=:,+" for c in s) else "'" + s + "'"


def thread_env(threads):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    return env


def run_reference(args, mode, data_dir, seeds):
    out_dir = os.path.join(args.work, f"reference-{mode}")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    script = os.path.join(kRepo, "bench", "reference", "s0_pytorch.py")
    runs, failures, wall = [], [], 0.0
    for norm in kNorms:
        for clip in kClips:
            for seed in seeds:
                stem = f"{norm}-clip{clip:g}-seed{seed}"
                out = os.path.join(out_dir, stem + ".json")
                cmd = [args.python, script, "--data", data_dir, "--weights", args.weights,
                       "--norm", norm, "--clip", f"{clip:g}", "--seed", str(seed),
                       "--epochs", str(args.epochs), "--threads", str(args.threads),
                       "--recalibrate-scope", args.ref_recalibrate_scope,
                       "--json", out] + kModes[mode]["reference"]
                if args.channels_last:
                    cmd.append("--channels-last")
                rc, seconds = run_logged(cmd, os.path.join(out_dir, stem + ".log"),
                                         thread_env(args.threads))
                wall += seconds
                if rc != 0 or not os.path.exists(out):
                    failures.append(f"reference {mode} {stem}: exit status {rc}")
                    continue
                with open(out) as f:
                    r = json.load(f)
                r["process_seconds"] = seconds
                runs.append({"config": config_name(norm, clip), "seed": seed,
                             "val_acc": r["val_acc"], "result": r})
    timing = None
    if runs:
        res = [r["result"] for r in runs]
        timing = {
            "source": "reference JSON (sum over runs)",
            "train_seconds": sum(r["train_seconds"] for r in res),
            "train_samples": sum(r["train_images"] * r["epochs"] for r in res),
            "eval_seconds": sum(r["val_seconds"] for r in res),
            "eval_samples": sum(r["val_images"] * r["epochs"] for r in res),
            "setup_seconds": sum(r["setup_seconds"] for r in res),
        }
    return {"runs": runs, "timing": timing, "wall_seconds": wall, "failures": failures}


# Every probe off (the speed comparison with the reference measures training alone).
kProbesOff = [
    "probe.landscape.enabled=false",
    "probe.grad_norms.enabled=false",
    "probe.grad_hist.enabled=false",
    "probe.clip.enabled=false",
]


def normlab_command(args, mode, data_dir, out_dir, seeds, probe_sets=None):
    sets = [
        f"data.path={data_dir}",
        "data.val_from=test",
        "data.val_fraction=1.0",
        "data.test=false",
        f"model.weights={args.weights}",
        "model.tf_same_padding=true",
        "model.recalibrate_bn=true",
        "data.normalize=tf-128",
        f"train.epochs={args.epochs}",
        "study.seeds=[" + ",".join(str(s) for s in seeds) + "]",
    ] + (kProbesOff if probe_sets is None else probe_sets) + kModes[mode]["normlab"]
    cmd = [args.normlab, "study", "run", args.study, "--out", out_dir,
           "--threads", str(args.threads), "--quiet", "--no-report"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def run_normlab(args, mode, data_dir, seeds):
    out_dir = os.path.join(args.work, f"normlab-{mode}")
    shutil.rmtree(out_dir, ignore_errors=True)  # else normlab resumes and skips complete runs
    env = thread_env(args.threads)
    if mode == "cache":
        # normlab's cache root (src/io/cache.cpp): a fresh one, so the cache build is measured.
        cache_root = os.path.join(args.work, "normlab-cache-root")
        shutil.rmtree(cache_root, ignore_errors=True)
        os.makedirs(cache_root)
        env["NORMLAB_CACHE"] = cache_root
    os.makedirs(args.work, exist_ok=True)
    cmd = normlab_command(args, mode, data_dir, out_dir, seeds)
    rc, wall = run_logged(cmd, os.path.join(args.work, f"normlab-{mode}.log"), env)
    result = {"command": cmd, "wall_seconds": wall, "runs": [], "timing": None, "failures": []}
    if rc != 0:
        result["failures"].append(f"normlab {mode}: exit status {rc} "
                                  f"(log: {args.work}/normlab-{mode}.log)")
    db = os.path.join(out_dir, "study.db")
    if os.path.exists(db):
        read_store(db, result, wall)
    elif rc == 0:
        result["failures"].append(f"normlab {mode}: no {db}")
    return result


# ---------------------------------------------------------------------------------------------
# (d) normlab's study store


def epoch_values(con, run_id, name):
    """A run's per-epoch values of one scalar, in epoch order. Schema 2 (src/store/schema.h):
    table `series`, one row per epoch with `vals` a little-endian float64 array; schema 1:
    table `scalars`, one row per value."""
    tables = {t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "series" in tables:
        out = []
        for (blob,) in con.execute(
                "SELECT vals FROM series WHERE run_id = ? AND axis = 'epoch' AND name = ? "
                "ORDER BY epoch", (run_id, name)):
            out += struct.unpack(f"<{len(blob) // 8}d", blob)
        return out
    return [v for (v,) in con.execute(
        "SELECT value FROM scalars WHERE run_id = ? AND kind = 'epoch' AND name = ? "
        "ORDER BY epoch", (run_id, name))]


def read_store(db, result, wall):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT id, name, config_json, status FROM runs ORDER BY id").fetchall()
        epoch_seconds = 0.0
        for run_id, name, config_json, status in rows:
            cfg = json.loads(config_json)
            accs = epoch_values(con, run_id, "val/acc")
            epoch_seconds += sum(v for v in epoch_values(con, run_id, "time/epoch_s")
                                 if v is not None and v == v)  # NULL and NaN skipped
            if status != "complete":
                result["failures"].append(f"normlab run {name}: status {status}")
            result["runs"].append({
                "config": config_name(cfg["model"]["head"]["norm"], cfg["train"]["clip_norm"]),
                "seed": cfg["seed"], "name": name, "status": status,
                "val_acc": accs[-1] if accs else None, "val_acc_per_epoch": accs})
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    finally:
        con.close()
    if "engine_timing" in meta:
        timing = json.loads(meta["engine_timing"])
        timing["source"] = "study.db meta 'engine_timing'"
        result["timing"] = timing
    else:
        result["timing"] = {"source": "fallback", "epoch_seconds": epoch_seconds}


def complete_fallback(result, n_train, n_val, epochs):
    """Without engine_timing: training seconds from the per-epoch 'time/epoch_s' scalars, and
    everything else in the process wall-clock (setup, cache, evaluation) counted as evaluation
    time, which understates normlab's evaluation rate."""
    t = result["timing"]
    if t is None or t.get("source") != "fallback":
        return
    runs = len(result["runs"])
    train = t["epoch_seconds"] if t["epoch_seconds"] > 0 else result["wall_seconds"]
    result["timing"] = {
        "source": "fallback: no meta 'engine_timing' in study.db; train seconds from "
                  "'time/epoch_s', eval seconds = process wall - train seconds",
        "train_seconds": train,
        "train_samples": runs * n_train * epochs,
        "eval_seconds": result["wall_seconds"] - train if result["wall_seconds"] > train
        else None,
        "eval_samples": runs * n_val * epochs,
    }


# ---------------------------------------------------------------------------------------------
# (e) Tables


def rates(timing):
    keys = ("train_seconds", "train_samples", "eval_seconds", "eval_samples")
    if not timing or not all(timing.get(k) for k in keys):
        return None
    return {"train_rate": timing["train_samples"] / timing["train_seconds"],
            "val_rate": timing["eval_samples"] / timing["eval_seconds"]}


def projected_seconds(timing, with_cache):
    r = rates(timing)
    if r is None:
        return None
    t = kFullConfigs * kFullEpochs * (kFullTrain / r["train_rate"] + kFullVal / r["val_rate"])
    if with_cache and timing.get("cache_images"):
        views = kFullTrain * kCacheViewsPerTrain + kFullVal
        t += timing["cache_seconds"] * views / timing["cache_images"]
    return t


def fmt(x, spec=".1f", none="n/a"):
    return none if x is None else format(x, spec)


def hms(seconds):
    if seconds is None:
        return "n/a"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def speed_table(report):
    print("\n== Speed ==")
    print(kFormula)
    header = (f"{'mode':9} {'system':9} {'wall s':>9} {'train img/s':>12} {'val img/s':>10} "
              f"{'projected T':>12}  timing source")
    for mode, m in report["modes"].items():
        print(f"\n{kModes[mode]['title']}")
        print(header)
        for system in ("reference", "normlab"):
            s = m[system]
            r = rates(s["timing"]) or {}
            print(f"{mode:9} {system:9} {fmt(s['wall_seconds']):>9} "
                  f"{fmt(r.get('train_rate')):>12} {fmt(r.get('val_rate')):>10} "
                  f"{hms(s['projected_seconds']):>12}  "
                  f"{(s['timing'] or {}).get('source', 'none')}")
        target = kTargets[mode]
        measured, projected = m["measured_wall_ratio"], m["projected_ratio"]
        verdict = "n/a" if projected is None else ("met" if projected >= target else "NOT met")
        print(f"measured wall ratio reference/normlab: {fmt(measured, '.2f')}; "
              f"projected full-study ratio: {fmt(projected, '.2f')} "
              f"(target >= {target:g}: {verdict})")


def seed_stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None


def accuracy_table(report):
    print("\n== Final validation accuracy (%), mean +- sd over seeds ==")
    print("agree: |mean difference| <= the larger of the two seed standard deviations")
    for mode, m in report["modes"].items():
        print(f"\n{kModes[mode]['title']}")
        print(f"{'config':16} {'reference':>15} {'normlab':>15} {'diff':>7}  {'agree':12}  "
              "(per seed: reference | normlab)")
        rows = []
        for norm in kNorms:
            for clip in kClips:
                name = config_name(norm, clip)
                ref = sorted((r["seed"], r["val_acc"]) for r in m["reference"]["runs"]
                             if r["config"] == name)
                nl = sorted((r["seed"], r["val_acc"]) for r in m["normlab"]["runs"]
                            if r["config"] == name)
                ref_mean, ref_sd = seed_stats([v for _, v in ref])
                nl_mean, nl_sd = seed_stats([v for _, v in nl])
                diff = None if ref_mean is None or nl_mean is None else nl_mean - ref_mean
                if diff is None:
                    agree = "n/a"
                elif ref_sd is None or nl_sd is None:
                    agree = "n/a (1 seed)"
                else:
                    agree = "yes" if abs(diff) <= max(ref_sd, nl_sd) else "NO"
                cell = lambda mean, sd: ("n/a" if mean is None else
                                         f"{mean:.2f}" + ("" if sd is None else f" +- {sd:.2f}"))
                per_seed = lambda xs: " ".join(fmt(v, ".2f") for _, v in xs) or "-"
                print(f"{name:16} {cell(ref_mean, ref_sd):>15} {cell(nl_mean, nl_sd):>15} "
                      f"{fmt(diff, '+.2f'):>7}  {agree:12}  ({per_seed(ref)} | {per_seed(nl)})")
                rows.append({"config": name, "reference": dict(ref), "normlab": dict(nl),
                             "reference_mean": ref_mean, "reference_sd": ref_sd,
                             "normlab_mean": nl_mean, "normlab_sd": nl_sd, "diff": diff,
                             "agree": agree})
        m["accuracy"] = rows


# ---------------------------------------------------------------------------------------------


def skipped():
    return {"runs": [], "timing": None, "wall_seconds": None, "failures": []}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="S0 benchmark: normlab vs a PyTorch/torchvision reference (see "
                    "bench/README.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="compute threads for both systems")
    p.add_argument("--train", type=int, default=2000,
                   help="training images (stratified, multiple of 10)")
    p.add_argument("--val", type=int, default=500,
                   help="validation images from test_batch.bin (multiple of 10)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, default=1, choices=[1, 2, 3],
                   help="number of seeds (0..N-1) per configuration")
    p.add_argument("--work", default="/tmp/normlab-bench", help="work directory")
    p.add_argument("--normlab", default=os.path.join(kRepo, "build", "release", "normlab"))
    p.add_argument("--study", default=os.path.join(kRepo, "studies", "s0_norm_heads.toml"))
    p.add_argument("--data", default=os.path.join(kShared, "cifar-10-batches-bin"),
                   help="full CIFAR-10 binary dir to take the subset from")
    p.add_argument("--weights", default=os.path.join(
        kShared, "weights", "mobilenet_v2_imagenet_tflite_qat_dequant.safetensors"))
    p.add_argument("--python", default=sys.executable, help="interpreter for the reference")
    p.add_argument("--skip-cache", action="store_true", help="only the faithful mode")
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--skip-normlab", action="store_true")
    p.add_argument("--channels-last", action="store_true", help="reference: channels_last")
    p.add_argument("--ref-recalibrate-scope", choices=["backbone", "all"], default="backbone",
                   help="reference: recalibrate the backbone's BatchNorm2d only, or also the "
                        "head's BatchNorm1d")
    p.add_argument("--prepare-only", action="store_true",
                   help="write the reduced data set and exit")
    args = p.parse_args(argv)
    args.work = os.path.abspath(args.work)
    args.weights = os.path.abspath(args.weights)
    return args


def main(argv=None):
    args = parse_args(argv)
    data_dir = os.path.join(args.work, "cifar")
    write_subset(args.data, data_dir, args.train, args.val)
    print(f"reduced CIFAR-10: {args.train} train / {args.val} val images in {data_dir}")
    if args.prepare_only:
        return 0
    seeds = list(range(args.seeds))
    modes = ["faithful"] if args.skip_cache else ["faithful", "cache"]
    report = {"args": vars(args), "formula": kFormula, "modes": {}}
    failures = []
    for mode in modes:
        print(f"\n=== {kModes[mode]['title']} ===", flush=True)
        # normlab first: an error from it (e.g. a key it does not know yet) shows up at once,
        # and the long reference part still runs.
        nl = skipped() if args.skip_normlab else run_normlab(args, mode, data_dir, seeds)
        complete_fallback(nl, args.train, args.val, args.epochs)
        ref = skipped() if args.skip_reference else run_reference(args, mode, data_dir, seeds)
        failures += nl["failures"] + ref["failures"]
        for s, with_cache in ((ref, False), (nl, mode == "cache")):
            s["projected_seconds"] = projected_seconds(s["timing"], with_cache)
        both = ref["wall_seconds"] and nl["wall_seconds"]
        proj = ref["projected_seconds"] and nl["projected_seconds"]
        report["modes"][mode] = {
            "reference": ref, "normlab": nl,
            "measured_wall_ratio": ref["wall_seconds"] / nl["wall_seconds"] if both else None,
            "projected_ratio": ref["projected_seconds"] / nl["projected_seconds"] if proj
            else None,
        }

    speed_table(report)
    accuracy_table(report)
    report["failures"] = failures
    out = os.path.join(args.work, "bench.json")
    with open(out, "w") as f:
        json.dump(report, f, indent=2, default=str)
    print(f"\nwritten: {out}")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
