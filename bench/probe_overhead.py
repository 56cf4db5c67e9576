#!/usr/bin/env python3
"""What probes cost: the same study with its probes on and off, on the same machine in one run.

Two workloads:
  quickstart  studies/quickstart.toml in full (FashionMNIST, small CNN): all probes off, the
              file's own probes (grad_norms, grad_hist pre/post, clip, landscape), and every
              distribution probe (grad_norms, grad_hist, weight_hist every minibatch, clip,
              update_ratio; no landscape);
  s0          the S0 shape of bench/s0_bench.py (real CIFAR-10 subset, MobileNetV2 with the
              shared ImageNet weights at 224 px), faithful and cache modes, with the
              distribution probes on (grad_norms, grad_hist pre/post, clip, update_ratio)
              vs all off.
Runs alternate on/off --repeats times (so drift in machine speed hits both) and the median
is compared. With --baseline BINARY (and --baseline-study, the study file that binary
understands) the S0 workload also runs that older build with probes off, to check that the
engine change did not slow training down.

  /usr/bin/python3 bench/probe_overhead.py --workload quickstart --repeats 3
  /usr/bin/python3 bench/probe_overhead.py --workload s0 --train 500 --val 200 --epochs 1 \\
      --baseline /tmp/normlab_v1 --baseline-study /tmp/s0_v1.toml
"""

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys

import s0_bench

kRepo = s0_bench.kRepo

# The distribution probes of issue 8 (landscape is a run-end probe, measured apart).
kS0ProbesOn = [
    "probe.landscape.enabled=false",
    "probe.grad_norms.enabled=true",
    "probe.grad_hist.enabled=true",
    "probe.clip.enabled=true",
    "probe.update_ratio.enabled=true",
]
kAllDistribution = [
    "probe.landscape.enabled=false",
    "probe.grad_norms.enabled=true",
    "probe.grad_hist.enabled=true",
    "probe.weight_hist.enabled=true",
    "probe.clip.enabled=true",
    "probe.update_ratio.enabled=true",
]
kQuickstartOff = [
    "probe.landscape.enabled=false",
    "probe.grad_norms.enabled=false",
    "probe.grad_hist.enabled=false",
    "probe.clip.enabled=false",
]
# What a v1 build (before the probe registry) understands to turn its probes off.
kV1ProbesOff = ["probe.landscape.enabled=false", "probe.grad_norms=false"]


def timing(out_dir):
    db = sqlite3.connect(os.path.join(out_dir, "study.db"))
    row = db.execute("SELECT value FROM meta WHERE key = 'engine_timing'").fetchone()
    db.close()
    t = json.loads(row[0])
    return {
        "train_img_s": t["train_samples"] / t["train_seconds"] if t["train_seconds"] else 0,
        "eval_img_s": t["eval_samples"] / t["eval_seconds"] if t["eval_seconds"] else 0,
    }


def store_bytes(out_dir):
    return sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir)
               if f.startswith("study.db"))


def run(cmd, out_dir, log, env):
    shutil.rmtree(out_dir, ignore_errors=True)
    rc, wall = s0_bench.run_logged(cmd, log, env)
    if rc != 0:
        sys.exit(f"failed ({rc}): see {log}")
    res = timing(out_dir)
    res["wall_s"] = wall
    res["store_bytes"] = store_bytes(out_dir)
    return res


def quickstart_cmd(args, out_dir, probe_sets):
    cmd = [args.normlab, "study", "run", os.path.join(kRepo, "studies", "quickstart.toml"),
           "--out", out_dir, "--threads", str(args.threads), "--quiet", "--no-report"]
    for s in probe_sets:
        cmd += ["--set", s]
    return cmd


def summarize(label, results):
    out = {}
    for key in ("wall_s", "train_img_s", "eval_img_s", "store_bytes"):
        out[key] = statistics.median(r[key] for r in results)
    print(f"  {label:28s} wall {out['wall_s']:8.1f} s  train {out['train_img_s']:8.1f} img/s  "
          f"eval {out['eval_img_s']:8.1f} img/s  store {out['store_bytes'] / 1e6:6.2f} MB "
          f"(median of {len(results)})")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--workload", choices=["quickstart", "s0"], default="quickstart")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--normlab", default=os.path.join(kRepo, "build", "release", "normlab"))
    p.add_argument("--work", default="/tmp/normlab-probe-bench")
    p.add_argument("--baseline", help="an older normlab binary, run with probes off (s0)")
    p.add_argument("--baseline-study", help="the S0 study file the baseline understands")
    # s0 workload (as bench/s0_bench.py)
    p.add_argument("--train", type=int, default=500)
    p.add_argument("--val", type=int, default=200)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--data", default=os.path.join(s0_bench.kShared, "cifar-10-batches-bin"))
    p.add_argument("--weights", default=os.path.join(
        s0_bench.kShared, "weights", "mobilenet_v2_imagenet_tflite_qat_dequant.safetensors"))
    p.add_argument("--modes", default="faithful,cache")
    args = p.parse_args(argv)
    args.work = os.path.abspath(args.work)
    args.weights = os.path.abspath(args.weights)
    args.study = os.path.join(kRepo, "studies", "s0_norm_heads.toml")
    os.makedirs(args.work, exist_ok=True)
    env = s0_bench.thread_env(args.threads)
    report = {}

    if args.workload == "quickstart":
        variants = {"probes off": kQuickstartOff,
                    "as in the file": [],
                    "all distribution probes": kAllDistribution}
        res = {k: [] for k in variants}
        for i in range(args.repeats):
            for name, sets in variants.items():
                out = os.path.join(args.work, "quickstart-" + name.replace(" ", "-"))
                res[name].append(run(quickstart_cmd(args, out, sets), out, out + f"-{i}.log", env))
        print("\nquickstart (studies/quickstart.toml, full; the file turns on grad_norms, "
              "grad_hist, clip and landscape):")
        summary = {name: summarize(name, r) for name, r in res.items()}
        off = summary["probes off"]
        for name in ("as in the file", "all distribution probes"):
            print(f"  overhead, {name}: {100 * (summary[name]['wall_s'] / off['wall_s'] - 1):+.1f}% "
                  f"wall, train img/s x{summary[name]['train_img_s'] / off['train_img_s']:.3f}")
        report["quickstart"] = summary
    else:
        data_dir = os.path.join(args.work, "cifar")
        s0_bench.write_subset(args.data, data_dir, args.train, args.val)
        for mode in args.modes.split(","):
            variants = {"off": (args.normlab, args.study, s0_bench.kProbesOff),
                        "on": (args.normlab, args.study, kS0ProbesOn)}
            if args.baseline:
                variants["baseline off"] = (args.baseline, args.baseline_study, kV1ProbesOff)
            res = {k: [] for k in variants}
            for i in range(args.repeats):
                for name, (binary, study, probes) in variants.items():
                    a = argparse.Namespace(**vars(args))
                    a.normlab, a.study = binary, study
                    out = os.path.join(args.work, f"s0-{mode}-{name.replace(' ', '-')}")
                    e = dict(env)
                    if mode == "cache":
                        # The cache is built by the first run and reused by later ones: the
                        # comparison is of training with a warm cache.
                        e["NORMLAB_CACHE"] = os.path.join(args.work, "cache-root")
                    cmd = s0_bench.normlab_command(a, mode, data_dir, out, [0], probes)
                    res[name].append(run(cmd, out, out + f"-{i}.log", e))
            print(f"\nS0 {mode} ({args.train} train / {args.val} val, {args.epochs} epoch(s), "
                  "6 configurations, seed 0):")
            summary = {name: summarize(name, r) for name, r in res.items()}
            on, off = summary["on"], summary["off"]
            print(f"  overhead of the probes: {100 * (on['wall_s'] / off['wall_s'] - 1):+.1f}% "
                  f"wall, train img/s x{on['train_img_s'] / off['train_img_s']:.3f}")
            if "baseline off" in summary:
                b = summary["baseline off"]
                print(f"  this build vs baseline, probes off: train img/s "
                      f"x{off['train_img_s'] / b['train_img_s']:.3f}, eval img/s "
                      f"x{off['eval_img_s'] / b['eval_img_s']:.3f}")
            report[f"s0-{mode}"] = summary
    with open(os.path.join(args.work, "probe_overhead.json"), "w") as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
