#!/usr/bin/env python3
"""S4 benchmark: normlab vs PyTorch written the usual way, same machine, one sitting.

The full-batch FashionMNIST part of studies/s4_estimation_shift.toml (11 strategies x seeds
x epochs of the 20-layer BN MLP, the 10k test set as training and evaluation set) run by
  normlab    one `normlab study run` (every strategy of a seed in lockstep on one batch),
             with the ESM probe off and on;
  PyTorch    bench/reference/s4_pytorch.py, one process per strategy and seed, with and
             without its own ESM measurement.
Prints wall seconds of each, the ratios (target: normlab >= 1.5x faster, probes off and
on), the cost of one ESM measurement, and mean test accuracy per strategy of both.

  /usr/bin/python3 bench/s4_bench.py                       # 10 epochs, 3 seeds (~10 min)
  /usr/bin/python3 bench/s4_bench.py --epochs 50           # the study's full length
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
kStrategies = [f"bn0.{i}" for i in range(1, 10)] + ["dmbn", "bn-bfn"]


def run_normlab(args, esm, out):
    shutil.rmtree(out, ignore_errors=True)
    cmd = [args.normlab, "study", "run", os.path.join(kRepo, "studies", "s4_estimation_shift.toml"),
           "--set", "data.dataset=fashion-mnist", "--set", "regime=full",
           "--set", f"train.epochs={args.epochs}",
           "--set", f"study.seeds=[{','.join(str(s) for s in range(args.seeds))}]",
           "--set", f"probe.esm.enabled={'true' if esm else 'false'}",
           "--out", out, "--threads", str(args.threads), "--quiet", "--no-report"]
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - t0
    db = sqlite3.connect(os.path.join(out, "study.db"))
    acc = {}
    q = ("select r.name, s.vals from series s join runs r on r.id = s.run_id "
         "where s.axis = 'epoch' and s.name = 'test/acc'")
    for name, vals in db.execute(q):
        strategy = name.split("strategy=")[1].split(" ")[0]
        acc.setdefault(strategy, []).append(struct.unpack(f"<{len(vals) // 8}d", vals)[-1] / 100)
    return wall, acc


def run_pytorch(args, esm):
    script = os.path.join(kRepo, "bench", "reference", "s4_pytorch.py")
    acc, t0 = {}, time.time()
    for seed in range(args.seeds):
        for strategy in kStrategies:
            cmd = [sys.executable, script, "--strategy", strategy, "--seed", str(seed),
                   "--epochs", str(args.epochs), "--threads", str(args.threads)]
            if esm:
                cmd.append("--esm")
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            acc.setdefault(strategy, []).append(json.loads(out.strip().splitlines()[-1])["test_acc"])
    return time.time() - t0, acc


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--normlab", default=os.path.join(kRepo, "build", "release", "normlab"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default="/tmp/normlab-s4-bench")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    print(f"S4 full batch, FashionMNIST: 11 strategies x {args.seeds} seeds x {args.epochs} "
          f"epochs, {args.threads} threads")
    res = {}
    for esm in (False, True):
        label = "esm on" if esm else "esm off"
        res[("normlab", esm)] = run_normlab(args, esm, os.path.join(args.work, label.replace(" ", "_")))
        res[("pytorch", esm)] = run_pytorch(args, esm)
        n, t = res[("normlab", esm)][0], res[("pytorch", esm)][0]
        print(f"  {label}: normlab {n:7.1f} s   PyTorch (one process per run) {t:7.1f} s   "
              f"ratio x{t / n:.2f}")
    runs = len(kStrategies) * args.seeds * args.epochs
    for system in ("normlab", "pytorch"):
        extra = res[(system, True)][0] - res[(system, False)][0]
        print(f"  ESM cost, {system}: {extra:+.1f} s over {runs} measurements "
              f"({1000 * extra / runs:+.1f} ms each)")
    print("  mean test accuracy (esm off): strategy, normlab, PyTorch")
    for s in kStrategies:
        a = res[("normlab", False)][1].get(s, [])
        b = res[("pytorch", False)][1].get(s, [])
        fmt = lambda v: f"{statistics.mean(v):.3f} +- {statistics.stdev(v):.3f}" if len(v) > 1 else (
            f"{v[0]:.3f}" if v else "-")
        print(f"    {s:8s} {fmt(a):>16s} {fmt(b):>16s}")
    with open(os.path.join(args.work, "bench.json"), "w") as f:
        json.dump({f"{k[0]}_{'esm' if k[1] else 'noesm'}": {"wall_s": v[0], "test_acc": v[1]}
                   for k, v in res.items()}, f, indent=1)


if __name__ == "__main__":
    main()
