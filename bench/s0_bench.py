#!/usr/bin/env python3
"""S0 benchmark: normlab vs two PyTorch peers, same machine, same threads.

Runs the S0 study shape (3 head norms x {no clip, clip 0.1} = 6 configurations) at reduced
size on real CIFAR-10 with the TFLite-converted ImageNet MobileNetV2, with normlab (one study
run) and with two PyTorch peers, one process per configuration and seed each:
  naive   bench/reference/s0_pytorch.py: Dataset + PIL transforms + DataLoader, the way
          users write it (this was "the reference");
  expert  bench/reference/s0_expert.py: uint8 tensors and batched augmentation, the frozen
          trunk under torch.no_grad in channels_last, and in the cache mode the trunk's
          features computed once per image and flip view and kept in memory.
in two modes:
  faithful  S0's augmentation: flip + crop 32 (padding 4) + resize to 224, every epoch;
  cache     flip only, frozen BNs in eval mode: normlab may serve the frozen trunk from its
            feature cache (data.feature_cache = require); the expert peer caches it in
            memory, the naive peer recomputes it.
It prints measured images/s and wall-clock of each, the measured ratios, normlab's ratio
projected to the full S0 study (40,000 train + 10,000 val images, 15 epochs, 6
configurations) against each peer, and per configuration whether the final validation
accuracies of normlab and each peer (and of the two peers) agree, with this rule
(bench/agreement.py; margin m = --margin accuracy points, alpha = --alpha):
  equivalent    TOST (two one-sided Welch t-tests, H0 diff <= -m and H0 diff >= +m)
                rejects both at alpha, i.e. the (1 - 2 alpha) CI of the difference lies
                inside (-m, m);
  different     not equivalent, and Welch's two-sided t-test rejects equal means (p < alpha);
  inconclusive  otherwise, and always with fewer than 2 seeds per system.
Zero variance in both systems: equivalent when |diff| < m, else different. It also prints
the paired per-seed differences (same seed number, data and validation images; different
random streams) with a paired t-test, and for the two peers the per-image agreement of
their predictions (normlab's store has no per-image predictions). The exit status is non-zero
when a configuration is "different" or a run failed.

  /usr/bin/python3 bench/s0_bench.py --threads 2                        # 1 seed, ~1.7 h
  /usr/bin/python3 bench/s0_bench.py --threads 2 --seeds 3              # agreement, ~5 h
  /usr/bin/python3 bench/s0_bench.py --threads 2 --train 100 --val 100 --epochs 1 --seeds 2

Everything is also written to WORK/bench.json (WORK = --work, default /tmp/normlab-bench).
"""

import argparse
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agreement  # noqa: E402

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

# The PyTorch peers (bench/reference) and the projected full-study ratio peer/normlab that
# normlab should reach against each on the 2-core CPU (issue 10).
kPeers = {
    "naive": os.path.join(kRepo, "bench", "reference", "s0_pytorch.py"),
    "expert": os.path.join(kRepo, "bench", "reference", "s0_expert.py"),
}
kTargets = {"naive": {"faithful": 15.0, "cache": 40.0},
            "expert": {"faithful": 3.0, "cache": 1.5}}

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
            " [+ cache_seconds * (40000*2 + 10000) / cache_images, cache mode of normlab and"
            " of the expert peer]; R_* = measured config-images per second; projected ratio ="
            " T_peer / T_normlab")


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


def peer_dir(args, peer, mode):
    # the naive peer keeps the directory name it had as "the reference"
    return os.path.join(args.work, f"{'reference' if peer == 'naive' else peer}-{mode}")


def run_reference(args, mode, data_dir, seeds, peer="naive"):
    """One process of the peer per configuration and seed."""
    out_dir = peer_dir(args, peer, mode)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    script = kPeers[peer]
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
                if args.channels_last and peer == "naive":  # the expert is channels_last
                    cmd.append("--channels-last")
                rc, seconds = run_logged(cmd, os.path.join(out_dir, stem + ".log"),
                                         thread_env(args.threads))
                wall += seconds
                if rc != 0 or not os.path.exists(out):
                    failures.append(f"{peer} peer {mode} {stem}: exit status {rc}")
                    continue
                with open(out) as f:
                    r = json.load(f)
                r["process_seconds"] = seconds
                predictions = r.pop("val_predictions", None)
                runs.append({"config": config_name(norm, clip), "seed": seed,
                             "val_acc": r["val_acc"], "val_predictions": predictions,
                             "result": r})
    timing = None
    if runs:
        res = [r["result"] for r in runs]
        timing = {
            "source": f"{peer} peer JSON (sum over runs)",
            "train_seconds": sum(r["train_seconds"] for r in res),
            "train_samples": sum(r["train_images"] * r["epochs"] for r in res),
            "eval_seconds": sum(r["val_seconds"] for r in res),
            "eval_samples": sum(r["val_images"] * r["epochs"] for r in res),
            "setup_seconds": sum(r["setup_seconds"] for r in res),
            # the expert's in-memory feature cache (cache mode), one per process
            "cache_seconds": sum(r.get("cache_seconds", 0.0) for r in res),
            "cache_images": sum(r.get("cache_images", 0) for r in res),
        }
    return {"peer": peer, "script": script, "runs": runs, "timing": timing,
            "wall_seconds": wall, "failures": failures}


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


def peer_results(report, mode):
    """(name, result) of the systems that ran in this mode, in table order."""
    m = report["modes"][mode]
    out = [(p, m["reference"] if p == "naive" else m[p]) for p in report["peers"]]
    if not report["args"]["skip_normlab"]:
        out.append(("normlab", m["normlab"]))
    return out


def speed_table(report):
    print("\n== Speed ==")
    if report["args"].get("reuse_peers"):
        print(f"The peers' numbers are reused from {report['args']['reuse_peers']}: they ran at "
              "another time, perhaps on another machine, so the ratios below do not measure "
              "anything; rerun without --reuse-peers for speed.")
    print(kFormula)
    header = (f"{'mode':9} {'system':8} {'wall s':>9} {'train img/s':>12} {'val img/s':>10} "
              f"{'cache s':>8} {'projected T':>12}  timing source")
    for mode, m in report["modes"].items():
        print(f"\n{kModes[mode]['title']}")
        print(header)
        for system, s in peer_results(report, mode):
            r = rates(s["timing"]) or {}
            cache = (s["timing"] or {}).get("cache_seconds")
            print(f"{mode:9} {system:8} {fmt(s['wall_seconds']):>9} "
                  f"{fmt(r.get('train_rate')):>12} {fmt(r.get('val_rate')):>10} "
                  f"{fmt(cache or None, none='-'):>8} {hms(s['projected_seconds']):>12}  "
                  f"{(s['timing'] or {}).get('source', 'none')}")
        for peer, r in m["ratios"].items():
            projected = r["projected_ratio"]
            met = "n/a" if projected is None else ("met" if projected >= r["target"] else
                                                   "NOT met")
            print(f"normlab vs {peer} peer: measured wall ratio {peer}/normlab "
                  f"{fmt(r['measured_wall_ratio'], '.2f')}; projected full-study ratio "
                  f"{fmt(projected, '.2f')} (target >= {r['target']:g}: {met})")


def by_seed(result, name):
    return {r["seed"]: r["val_acc"] for r in result["runs"] if r["config"] == name}


def predictions_by_seed(result, name):
    return {r["seed"]: r["val_predictions"] for r in result["runs"]
            if r["config"] == name and r.get("val_predictions") is not None}


def read_labels(path):
    with open(path, "rb") as f:
        raw = f.read()
    return list(raw[::kRecord])


def compare(a_name, a, b_name, b, args, labels):
    """Per configuration: the verdict of a vs b (diff = a - b), the paired per-seed
    differences and, where both have per-image predictions, their per-image agreement."""
    rows = []
    for norm in kNorms:
        for clip in kClips:
            name = config_name(norm, clip)
            acc_a, acc_b = by_seed(a, name), by_seed(b, name)
            v = agreement.verdict(list(acc_a.values()), list(acc_b.values()), args.margin,
                                  args.alpha)
            pa, pb = predictions_by_seed(a, name), predictions_by_seed(b, name)
            images = {}
            for seed in sorted(set(pa) & set(pb)):
                if len(pa[seed]) == len(pb[seed]) == len(labels):
                    images[seed] = agreement.per_image(pa[seed], pb[seed], labels)
            rows.append({"config": name, "a": a_name, "b": b_name, a_name: acc_a,
                         b_name: acc_b, "verdict": v,
                         "paired": agreement.paired(acc_a, acc_b), "per_image": images})
    return rows


def cell(mean, sd):
    return "n/a" if mean is None else f"{mean:.2f}" + ("" if sd is None else f" +- {sd:.2f}")


def print_comparison(rows, alpha):
    a, b = rows[0]["a"], rows[0]["b"]
    ci = f"{100 * (1 - 2 * alpha):g}% CI"
    print(f"{'config':16} {a:>15} {b:>15} {'diff':>7} {ci:>17} {'Welch p':>8} "
          f"{'TOST p':>8}  verdict")
    for row in rows:
        v = row["verdict"]
        interval = ("n/a" if v["ci_tost"] is None else
                    f"[{v['ci_tost'][0]:+.2f}, {v['ci_tost'][1]:+.2f}]")
        shown = v["verdict"].upper() if v["verdict"] == "different" else v["verdict"]
        if v["p"] is None:  # too few seeds: say why
            shown += f" ({v['reason']})"
        print(f"{row['config']:16} {cell(v['mean_a'], v['sd_a']):>15} "
              f"{cell(v['mean_b'], v['sd_b']):>15} {fmt(v['diff'], '+.2f'):>7} "
              f"{interval:>17} {fmt(v['p'], '.3g'):>8} {fmt(v['p_tost'], '.3g'):>8}  {shown}")
        p = row["paired"]
        if p["n"]:
            seeds = ", ".join(f"s{s} {d:+.2f}" for s, d in zip(p["seeds"], p["diffs"]))
            print(f"{'':16} paired by seed ({a} - {b}): {seeds}; mean {p['mean']:+.2f}"
                  + ("" if p["sd"] is None else f" +- {p['sd']:.2f}")
                  + ("" if p["p"] is None else f", paired t-test p {p['p']:.3g}")
                  + (" (sd 0: the test is degenerate)" if p["sd"] == 0 else ""))
        for seed, r in row["per_image"].items():
            print(f"{'':16} per image, seed {seed}: {100 * r['same']:.1f}% same predictions "
                  f"of {r['n']}; right only in {a} {r['only_a']}, only in {b} {r['only_b']}; "
                  f"McNemar p {r['mcnemar_p']:.3g}")


def agreement_tables(report, args, labels):
    """Prints every comparison and returns the 'different' ones."""
    print("\n== Agreement of the final validation accuracy (%), per configuration ==")
    print(f"mean +- sd over seeds; diff = first - second; margin {args.margin:g} points, "
          f"alpha {args.alpha:g}. equivalent: TOST rejects both |diff| >= margin nulls "
          f"(the {100 * (1 - 2 * args.alpha):g}% CI lies inside +-margin); different: not "
          "equivalent and Welch p < alpha; else inconclusive (also with < 2 seeds).")
    print("Pairs by seed share the seed number, data and validation images, not the random "
          "streams. normlab's store has no per-image predictions; the peers' are compared.")
    different = []
    for mode, m in report["modes"].items():
        systems = dict(peer_results(report, mode))
        pairs = [("normlab", p) for p in report["peers"] if "normlab" in systems]
        if "naive" in systems and "expert" in systems:
            pairs.append(("expert", "naive"))
        m["agreement"] = {}
        for a, b in pairs:
            rows = compare(a, systems[a], b, systems[b], args, labels)
            key = f"{a} vs {b}"
            m["agreement"][key] = rows
            print(f"\n{kModes[mode]['title']}: {key}")
            print_comparison(rows, args.alpha)
            different += [f"{mode} {key} {r['config']}: {r['verdict']['reason']}"
                          for r in rows if r["verdict"]["verdict"] == "different"]
        # the table of earlier bench.json files (normlab vs the naive peer, "reference")
        nl, ref = systems.get("normlab"), systems.get("naive")
        rows = []
        for norm in kNorms:
            for clip in kClips:
                name = config_name(norm, clip)
                v = agreement.verdict(
                    list(by_seed(nl, name).values()) if nl else [],
                    list(by_seed(ref, name).values()) if ref else [], args.margin, args.alpha)
                rows.append({"config": name,
                             "reference": by_seed(ref, name) if ref else {},
                             "normlab": by_seed(nl, name) if nl else {},
                             "reference_mean": v["mean_b"], "reference_sd": v["sd_b"],
                             "normlab_mean": v["mean_a"], "normlab_sd": v["sd_a"],
                             "diff": v["diff"], "agree": v["verdict"]})
        m["accuracy"] = rows
    return different


# ---------------------------------------------------------------------------------------------


def skipped():
    return {"runs": [], "timing": None, "wall_seconds": None, "failures": []}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="S0 benchmark: normlab vs a naive and an expert PyTorch peer, with "
                    "statistical agreement of accuracies (see bench/README.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="compute threads for every system")
    p.add_argument("--train", type=int, default=2000,
                   help="training images (stratified, multiple of 10)")
    p.add_argument("--val", type=int, default=1000,
                   help="validation images from test_batch.bin (multiple of 10)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, default=1,
                   help="number of seeds (0..N-1) per configuration; the agreement run uses "
                        "3 (with 1 every verdict is inconclusive)")
    p.add_argument("--peers", default="naive,expert",
                   help="comma-separated PyTorch peers to run: naive (s0_pytorch.py), "
                        "expert (s0_expert.py)")
    p.add_argument("--margin", type=float, default=1.0,
                   help="equivalence margin of the TOST, in accuracy points")
    p.add_argument("--alpha", type=float, default=0.05, help="level of every test")
    p.add_argument("--work", default="/tmp/normlab-bench", help="work directory")
    p.add_argument("--normlab", default=os.path.join(kRepo, "build", "release", "normlab"))
    p.add_argument("--study", default=os.path.join(kRepo, "studies", "s0_norm_heads.toml"))
    p.add_argument("--data", default=os.path.join(kShared, "cifar-10-batches-bin"),
                   help="full CIFAR-10 binary dir to take the subset from")
    p.add_argument("--weights", default=os.path.join(
        kShared, "weights", "mobilenet_v2_imagenet_tflite_qat_dequant.safetensors"))
    p.add_argument("--python", default=sys.executable, help="interpreter for the peers")
    p.add_argument("--skip-cache", action="store_true", help="only the faithful mode")
    p.add_argument("--skip-faithful", action="store_true", help="only the cache mode")
    p.add_argument("--skip-reference", action="store_true", help="run no PyTorch peer")
    p.add_argument("--skip-normlab", action="store_true")
    p.add_argument("--reuse-peers", metavar="BENCH_JSON",
                   help="take the peers' results of each mode from an earlier bench.json made "
                        "with the same data settings instead of running them (to check a "
                        "normlab change against the same peer runs; speed ratios then compare "
                        "runs made at different times)")
    p.add_argument("--channels-last", action="store_true",
                   help="naive peer: channels_last (the expert always is)")
    p.add_argument("--ref-recalibrate-scope", choices=["backbone", "all"], default="backbone",
                   help="both peers: recalibrate the backbone's BatchNorm2d only, or also the "
                        "head's BatchNorm1d")
    p.add_argument("--prepare-only", action="store_true",
                   help="write the reduced data set and exit")
    args = p.parse_args(argv)
    args.work = os.path.abspath(args.work)
    args.weights = os.path.abspath(args.weights)
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    if not args.margin > 0:
        p.error("--margin must be > 0")
    if not 0 < args.alpha < 0.5:
        p.error("--alpha must be in (0, 0.5)")
    peers = [x for x in args.peers.split(",") if x]
    unknown = [x for x in peers if x not in kPeers]
    if unknown:
        p.error(f"--peers: unknown {unknown}; known: {','.join(kPeers)}")
    args.peer_list = [x for x in kPeers if x in peers]  # table order: naive, expert
    return args


# The settings that decide what the peers computed; an earlier bench.json is reused only when
# they are the same.
kPeerSettings = ("train", "val", "epochs", "seeds", "data", "weights", "ref_recalibrate_scope",
                 "channels_last")


def load_earlier(args):
    with open(args.reuse_peers) as f:
        earlier = json.load(f)
    mismatched = [k for k in kPeerSettings if earlier["args"].get(k) != getattr(args, k)]
    if mismatched:
        sys.exit(f"s0_bench: {args.reuse_peers} was made with other settings: " + ", ".join(
            f"{k}={earlier['args'].get(k)!r} (now {getattr(args, k)!r})" for k in mismatched))
    return earlier


def reused_peer(earlier, mode, peer):
    key = "reference" if peer == "naive" else peer
    try:
        res = earlier["modes"][mode][key]
    except KeyError:
        sys.exit(f"s0_bench: the earlier bench.json has no {peer} peer in the {mode} mode")
    if not res.get("runs"):
        sys.exit(f"s0_bench: the earlier bench.json's {peer} peer ran nothing in the {mode} mode")
    print(f"{peer} peer, {mode} mode: reused from the earlier bench.json", flush=True)
    return res


def main(argv=None):
    args = parse_args(argv)
    data_dir = os.path.join(args.work, "cifar")
    write_subset(args.data, data_dir, args.train, args.val)
    print(f"reduced CIFAR-10: {args.train} train / {args.val} val images in {data_dir}")
    if args.prepare_only:
        return 0
    seeds = list(range(args.seeds))
    modes = [m for m, skip in (("faithful", args.skip_faithful), ("cache", args.skip_cache))
             if not skip]
    peers = [] if args.skip_reference else args.peer_list
    earlier = load_earlier(args) if args.reuse_peers else None
    report = {"args": vars(args), "formula": kFormula, "peers": peers,
              "margin": args.margin, "alpha": args.alpha, "modes": {}}
    failures = []
    for mode in modes:
        print(f"\n=== {kModes[mode]['title']} ===", flush=True)
        # normlab first: an error from it (e.g. a key it does not know yet) shows up at once,
        # and the long peer part still runs.
        nl = skipped() if args.skip_normlab else run_normlab(args, mode, data_dir, seeds)
        complete_fallback(nl, args.train, args.val, args.epochs)
        nl["projected_seconds"] = projected_seconds(nl["timing"], mode == "cache")
        failures += nl["failures"]
        m = {"normlab": nl, "reference": skipped(), "ratios": {}}
        m["reference"]["projected_seconds"] = None
        for peer in peers:
            res = (reused_peer(earlier, mode, peer) if earlier
                   else run_reference(args, mode, data_dir, seeds, peer))
            failures += res["failures"]
            # the expert's cache is counted as normlab's: once for the whole study
            res["projected_seconds"] = projected_seconds(res["timing"],
                                                         mode == "cache" and peer == "expert")
            m["reference" if peer == "naive" else peer] = res
            both = res["wall_seconds"] and nl["wall_seconds"]
            proj = res["projected_seconds"] and nl["projected_seconds"]
            m["ratios"][peer] = {
                "measured_wall_ratio": res["wall_seconds"] / nl["wall_seconds"] if both
                else None,
                "projected_ratio": res["projected_seconds"] / nl["projected_seconds"] if proj
                else None,
                "target": kTargets[peer][mode],
            }
        naive = m["ratios"].get("naive", {})
        m["measured_wall_ratio"] = naive.get("measured_wall_ratio")  # vs the naive peer, as
        m["projected_ratio"] = naive.get("projected_ratio")          # in earlier bench.json
        report["modes"][mode] = m

    speed_table(report)
    different = agreement_tables(report, args, read_labels(os.path.join(data_dir,
                                                                        "test_batch.bin")))
    report["failures"] = failures
    report["different"] = different
    out = os.path.join(args.work, "bench.json")
    with open(out, "w") as f:
        json.dump(report, f, indent=2, default=str)
    print(f"\nwritten: {out}")
    status = 0
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        status = 1
    if different:
        print("\nDIFFERENT (normlab or a peer disagrees beyond the margin):\n  "
              + "\n  ".join(different))
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
