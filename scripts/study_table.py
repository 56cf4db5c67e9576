#!/usr/bin/env python3
"""Per-configuration results of a normlab study with their seed-to-seed spread, and paired
comparisons between configurations.

For each configuration (group) of the store: mean +- sd over seeds of METRIC at the final
epoch (or at --epoch N, 1-based, e.g. to compare how fast runs converge), n, and the 95%
Student t interval of the mean. Then for each --pair A B: per seed, A - B (same seed number:
same initial head weights and, in lockstep, the same batches), mean +- sd and the 95% t
interval of the mean difference; "A > B" or "A < B" only when the interval excludes 0,
otherwise "not distinguishable". A configuration is named by its group label, or by a unique
substring of it.

  /usr/bin/python3 scripts/study_table.py STUDY_DIR [STUDY_DIR ...]   # e.g. one dir per seed
  /usr/bin/python3 scripts/study_table.py STUDY_DIR --metric val/acc --epoch 1 \\
      --pair "experiment=E1 norm=bn" "experiment=E1 norm=none"
"""

import argparse
import math
import os
import sqlite3
import statistics
import struct
import sys

# Two-sided 95% Student t quantiles by degrees of freedom.
kT = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
      9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}


def t95(df):
    if df in kT:
        return kT[df]
    below = [d for d in kT if d <= df]
    return kT[max(below)] if below else kT[1]


def read(study_dir, metric, epoch):
    """{group: {seed: value}} of complete runs; epoch None = each run's last epoch."""
    db = sqlite3.connect(f"file:{os.path.join(study_dir, 'study.db')}?mode=ro", uri=True)
    aux = set()
    row = db.execute("SELECT value FROM meta WHERE key = 'auxiliary_groups'").fetchone()
    if row:
        import json
        aux = set(json.loads(row[0]))
    out = {}
    for run_id, group, seed, status in db.execute("SELECT id, grp, seed, status FROM runs"):
        if status != "complete" or group in aux:
            continue
        points = {}
        for steps, vals in db.execute(
                "SELECT steps, vals FROM series WHERE run_id = ? AND axis = 'epoch' AND name = ?",
                (run_id, metric)):
            n = len(steps) // 8
            for s, v in zip(struct.unpack(f"<{n}q", steps), struct.unpack(f"<{n}d", vals)):
                points[s] = v
        if not points:
            continue
        step = max(points) if epoch is None else epoch - 1
        if step in points:
            out.setdefault(group, {})[seed] = points[step]
    return out


def summary(values):
    n = len(values)
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if n > 1 else float("nan")
    half = t95(n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    return mean, sd, n, half


def find(groups, name):
    if name in groups:
        return name
    hits = [g for g in groups if name in g]
    if len(hits) != 1:
        sys.exit(f"'{name}' names {len(hits)} configurations: {hits or sorted(groups)}")
    return hits[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("study_dirs", nargs="+", metavar="study_dir",
                   help="one or more study directories (e.g. the same study run per seed)")
    p.add_argument("--metric", default="val/acc")
    p.add_argument("--epoch", type=int, default=None, help="1-based; default: the last")
    p.add_argument("--pair", nargs=2, action="append", default=[], metavar=("A", "B"))
    args = p.parse_args()
    data = {}
    for d in args.study_dirs:
        for group, by_seed in read(d, args.metric, args.epoch).items():
            for seed, value in by_seed.items():
                if seed in data.get(group, {}):
                    sys.exit(f"{d}: {group} seed {seed} is also in another directory")
                data.setdefault(group, {})[seed] = value
    if not data:
        sys.exit(f"no complete run recorded {args.metric}")
    when = "final epoch" if args.epoch is None else f"epoch {args.epoch}"
    print(f"{args.metric} at the {when}: mean +- sd over seeds [95% t interval of the mean]")
    width = max(len(g) for g in data)
    for group in sorted(data):
        mean, sd, n, half = summary(list(data[group].values()))
        print(f"  {group:<{width}}  {mean:8.3f} +- {sd:6.3f}  n={n}  "
              f"[{mean - half:8.3f}, {mean + half:8.3f}]")
    for a_name, b_name in args.pair:
        a, b = find(data, a_name), find(data, b_name)
        seeds = sorted(set(data[a]) & set(data[b]))
        diffs = [data[a][s] - data[b][s] for s in seeds]
        if len(diffs) < 2:
            print(f"\n{a} - {b}: {len(diffs)} common seed(s), not enough for an interval")
            continue
        mean, sd, n, half = summary(diffs)
        lo, hi = mean - half, mean + half
        verdict = "A > B" if lo > 0 else "A < B" if hi < 0 else "not distinguishable"
        print(f"\nA = {a}\nB = {b}\n  A - B per seed: " +
              ", ".join(f"{d:+.3f}" for d in diffs) +
              f"\n  mean {mean:+.3f} +- {sd:.3f} (n={n}), 95% interval [{lo:+.3f}, {hi:+.3f}]: "
              f"{verdict}")


if __name__ == "__main__":
    main()
