#!/usr/bin/env python3
"""Seed 004's tables 5.1-5.2 beside a normlab S4 study store, with the seed-to-seed spread.

For each dataset and regime in the store: per strategy, mean +- sd over seeds of test
accuracy, macro sensitivity, macro specificity and macro F1 (final epoch), next to the
seed's single-run numbers; then the seed's claims tested two ways:
  unpaired  the 95% t intervals of the two strategies' means overlap -> "not distinguishable"
  paired    per seed, the difference between the two strategies (same initial weights and,
            in lockstep, the same batches), mean +- sd and its 95% t interval; the claim holds
            only if the interval excludes 0.

  /usr/bin/python3 scripts/s4_tables.py STUDY_DIR
"""

import math
import os
import sqlite3
import statistics
import struct
import sys

# Seed 004, tables 5.1 (MNIST) and 5.2 (FashionMNIST): accuracy, sensitivity, specificity, F1.
kSeed = {
    ("fashion-mnist", "full"): {
        "bn0.1": (0.802, 0.802, 0.978, 0.786), "bn0.2": (0.858, 0.858, 0.984, 0.855),
        "bn0.3": (0.871, 0.871, 0.986, 0.868), "bn0.4": (0.866, 0.866, 0.985, 0.864),
        "bn0.5": (0.864, 0.864, 0.985, 0.866), "bn0.6": (0.859, 0.859, 0.984, 0.858),
        "bn0.7": (0.769, 0.769, 0.974, 0.763), "bn0.8": (0.880, 0.880, 0.987, 0.877),
        "bn0.9": (0.836, 0.836, 0.982, 0.835), "dmbn": (0.889, 0.889, 0.988, 0.888),
        "bn-bfn": (0.853, 0.853, 0.984, 0.855)},
    ("fashion-mnist", "b100"): {
        "bn0.1": (0.873, 0.873, 0.986, 0.874), "bn0.2": (0.866, 0.866, 0.985, 0.865),
        "bn0.3": (0.872, 0.872, 0.986, 0.871), "bn0.4": (0.872, 0.872, 0.986, 0.872),
        "bn0.5": (0.872, 0.872, 0.986, 0.872), "bn0.6": (0.857, 0.857, 0.984, 0.857),
        "bn0.7": (0.873, 0.873, 0.986, 0.873), "bn0.8": (0.863, 0.863, 0.985, 0.862),
        "bn0.9": (0.864, 0.864, 0.985, 0.865), "dmbn": (0.875, 0.875, 0.986, 0.874),
        "bn-bfn": (0.622, 0.622, 0.958, 0.583)},
    ("mnist", "full"): {
        "bn0.1": (0.983, 0.983, 0.998, 0.983), "bn0.2": (0.992, 0.992, 0.999, 0.992),
        "bn0.3": (0.993, 0.993, 0.999, 0.993), "bn0.4": (0.993, 0.993, 0.999, 0.993),
        "bn0.5": (0.993, 0.993, 0.999, 0.993), "bn0.6": (0.995, 0.995, 0.999, 0.995),
        "bn0.7": (0.991, 0.991, 0.999, 0.991), "bn0.8": (0.994, 0.994, 0.999, 0.994),
        "bn0.9": (0.994, 0.994, 0.999, 0.994), "dmbn": (0.996, 0.996, 1.000, 0.996),
        "bn-bfn": (0.992, 0.992, 0.999, 0.992)},
    ("mnist", "b100"): {
        "bn0.1": (0.977, 0.977, 0.997, 0.977), "bn0.2": (0.976, 0.975, 0.997, 0.975),
        "bn0.3": (0.974, 0.974, 0.997, 0.974), "bn0.4": (0.976, 0.975, 0.997, 0.975),
        "bn0.5": (0.976, 0.976, 0.997, 0.976), "bn0.6": (0.975, 0.974, 0.997, 0.974),
        "bn0.7": (0.972, 0.972, 0.997, 0.972), "bn0.8": (0.975, 0.975, 0.997, 0.975),
        "bn0.9": (0.973, 0.972, 0.997, 0.972), "dmbn": (0.980, 0.980, 0.998, 0.980),
        "bn-bfn": (0.978, 0.978, 0.998, 0.978)},
}
kMetrics = ["test/acc", "test/macro_sensitivity", "test/macro_specificity", "test/macro_f1"]
kOrder = [f"bn0.{i}" for i in range(1, 10)] + ["dmbn", "bn-bfn"]
# Two-sided 95% Student t quantiles by degrees of freedom.
kT = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def label(name, key):
    for part in name.split(" "):
        if part.startswith(key + "="):
            return part[len(key) + 1:]
    return None


def load(study_dir):
    db = sqlite3.connect(os.path.join(study_dir, "study.db"))
    out = {}  # (dataset, regime) -> strategy -> metric -> {seed: value}
    q = ("select r.name, r.seed, s.name, s.vals from series s join runs r on r.id = s.run_id "
         "where s.axis = 'epoch' and r.status = 'complete' and s.name in (%s) order by s.epoch"
         % ",".join("?" * len(kMetrics)))
    for name, seed, metric, vals in db.execute(q, kMetrics):
        v = struct.unpack(f"<{len(vals) // 8}d", vals)[-1]
        scale = 100.0 if metric == "test/acc" else 1.0  # accuracy is stored in percent
        key = (label(name, "dataset"), label(name, "regime"))
        out.setdefault(key, {}).setdefault(label(name, "strategy"), {}).setdefault(metric, {})[
            seed] = v / scale
    return out


def ci(values):
    n = len(values)
    if n < 2:
        return float("nan")
    return kT.get(n - 1, 1.96) * statistics.stdev(values) / math.sqrt(n)


def ms(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"


def compare(table, a, b, metric="test/acc"):
    va, vb = table.get(a, {}).get(metric, {}), table.get(b, {}).get(metric, {})
    if len(va) < 2 or len(vb) < 2:
        return f"  {a} vs {b}: fewer than 2 seeds"
    xa, xb = list(va.values()), list(vb.values())
    diff = statistics.mean(xa) - statistics.mean(xb)
    overlap = abs(diff) <= ci(xa) + ci(xb)
    seeds = sorted(set(va) & set(vb))
    d = [va[s] - vb[s] for s in seeds]
    dm, dci = statistics.mean(d), ci(d)
    paired = "not distinguishable" if abs(dm) <= dci else ("larger" if dm > 0 else "smaller")
    return (f"  {a} - {b} ({metric}): {diff:+.4f}; unpaired: "
            f"{'not distinguishable (intervals overlap)' if overlap else 'distinguishable'}; "
            f"paired over {len(seeds)} seeds: {dm:+.4f} +- {statistics.stdev(d):.4f} "
            f"(95% CI +-{dci:.4f}) -> {paired}")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    data = load(sys.argv[1])
    for key in sorted(data):
        table, seed = data[key], kSeed.get(key, {})
        print(f"\n{key[0]}, regime {key[1]}: final-epoch test metrics, mean +- sd over seeds "
              f"(seed 004's single run in brackets)")
        print(f"  {'strategy':8s} " + " ".join(f"{m.split('/')[1]:>26s}" for m in kMetrics))
        for s in kOrder:
            if s not in table:
                continue
            cells = []
            for i, m in enumerate(kMetrics):
                paper = f" [{seed[s][i]:.3f}]" if s in seed else ""
                cells.append(f"{ms(list(table[s].get(m, {}).values()))}{paper}")
            print(f"  {s:8s} " + " ".join(f"{c:>26s}" for c in cells))
        statics = [s for s in kOrder if s.startswith("bn0") and s in table]
        if statics:
            best = max(statics, key=lambda s: statistics.mean(table[s]["test/acc"].values()))
            print(f"  best static momentum here: {best}")
            print(compare(table, "dmbn", "bn0.1"))
            print(compare(table, "dmbn", "bn-bfn"))
            if best == "bn0.1":
                print("  (the default is the best static momentum: dmbn - best is dmbn - bn0.1)")
            else:
                print(compare(table, "dmbn", best))
                print(compare(table, best, "bn0.1"))


if __name__ == "__main__":
    main()
