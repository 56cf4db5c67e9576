#!/usr/bin/python3
"""Reference learning rates for tests/train/schedule_test.cpp, from torch.optim.lr_scheduler.

Run with the Python that has torch 1.13 (Debian's python3-torch, hence /usr/bin/python3):
    /usr/bin/python3 scripts/gen_schedule_fixtures.py
It rewrites tests/fixtures/schedule/schedules.json: a list of cases, each
    name             str
    options          the ScheduleOptions fields that differ from their defaults
    base_lrs         one learning rate per SGD parameter group (S0-like: 1e-5 and 1e-3)
    steps_per_epoch, epochs
    monitored        one value per epoch, passed to end_epoch (null = NaN; JSON has no NaN)
    lr               per global step, the learning rate of every group during that step

How normlab composes the pieces (src/train/schedule.h), and what each piece is checked against:
  - step:    StepLR(step_size, gamma), stepped once per epoch.
  - cosine:  CosineAnnealingLR(T_max = steps after warmup, eta_min = min_lr), stepped once per
             step after the warmup (normlab evaluates the closed form; the script checks that
             torch's recursive form agrees with it to 1e-13).
  - plateau: ReduceLROnPlateau(mode, factor, patience, threshold (rel), cooldown, min_lr),
             stepped once per epoch with the monitored value.
  - warmup:  LinearLR(start_factor, total_iters = warmup steps) on a one-group optimizer with
             lr 1, evaluated per step in closed form (torch 1.13's recursive LinearLR divides
             by zero for start_factor 0); it multiplies the schedule's learning rate.
"""
import json
import math
import os
import warnings

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "schedule")

# The closed-form path of scheduler.step(epoch) warns that it is deprecated; it is used on
# purpose (it is torch's own closed form), as is stepping without an optimizer step.
warnings.filterwarnings("ignore", category=UserWarning)


def sgd(base_lrs):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in base_lrs]
    return torch.optim.SGD(groups, lr=base_lrs[0])


def lrs(opt):
    return [float(g["lr"]) for g in opt.param_groups]


def warmup_factors(total_steps, warmup_steps, start_factor):
    if warmup_steps == 0:
        return [1.0] * total_steps
    opt = sgd([1.0])
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=start_factor, end_factor=1.0,
                                              total_iters=warmup_steps)
    out = []
    for s in range(total_steps):
        sched.step(s)  # closed form: start + (1 - start) * min(s, W) / W
        out.append(lrs(opt)[0])
    return out


def monitored_json(values):
    return [None if math.isnan(v) else v for v in values]


def case(name, options, base_lrs, steps_per_epoch, epochs, monitored=None):
    kind = options.get("name", "none")
    total = steps_per_epoch * epochs
    warmup_steps = options.get("warmup_epochs", 0) * steps_per_epoch
    warm = warmup_factors(total, warmup_steps, options.get("warmup_start_factor", 0.0))
    monitored = monitored or [0.0] * epochs
    assert len(monitored) == epochs

    # sched[s] = the schedule's learning rates (before warmup) during global step s.
    sched = []
    if kind in ("none", "step", "plateau"):
        opt = sgd(base_lrs)
        if kind == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=options["step_size"],
                                                        gamma=options["gamma"])
        elif kind == "plateau":
            monitor = options.get("monitor", "val/loss")
            mode = options.get("mode", "auto")
            if mode == "auto":
                mode = "min" if monitor.endswith("loss") else "max"
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode=mode, factor=options["factor"], patience=options["patience"],
                threshold=options["threshold"], threshold_mode="rel",
                cooldown=options.get("cooldown", 0), min_lr=options.get("min_lr", 0.0))
        for epoch in range(epochs):
            sched.extend([lrs(opt)] * steps_per_epoch)
            if kind == "step":
                opt.step()
                scheduler.step()
            elif kind == "plateau":
                scheduler.step(monitored[epoch])
    elif kind == "cosine":
        t_max = total - warmup_steps
        opt = sgd(base_lrs)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max,
                                                               eta_min=options.get("min_lr", 0))
        sched.extend([lrs(opt)] * warmup_steps)
        for t in range(t_max):
            sched.append(lrs(opt))
            closed = [options.get("min_lr", 0) + (b - options.get("min_lr", 0)) *
                      (1 + math.cos(math.pi * t / t_max)) / 2 for b in base_lrs]
            for a, c in zip(lrs(opt), closed):
                assert abs(a - c) <= 1e-13 * abs(c), (name, t, a, c)
            opt.step()
            scheduler.step()
    else:
        raise ValueError(kind)

    lr = [[w * g for g in groups] for w, groups in zip(warm, sched)]
    return {"name": name, "options": options, "base_lrs": base_lrs,
            "steps_per_epoch": steps_per_epoch, "epochs": epochs,
            "monitored": monitored_json(monitored), "lr": lr}


def main():
    s0 = [1e-5, 1e-3]  # S0: features.18 at 1e-5, the head at 1e-3
    nan = float("nan")
    cases = [
        case("none", {}, s0, 3, 2),
        case("none_warmup", {"warmup_epochs": 1, "warmup_start_factor": 0.25}, s0, 4, 3),
        case("step", {"name": "step", "step_size": 3, "gamma": 0.5}, s0, 3, 10),
        case("step_warmup", {"name": "step", "step_size": 2, "gamma": 0.1, "warmup_epochs": 2,
                             "warmup_start_factor": 0.1}, s0, 4, 7),
        case("cosine", {"name": "cosine"}, s0, 7, 5),
        case("cosine_warmup", {"name": "cosine", "warmup_epochs": 2, "min_lr": 1e-6}, s0, 5, 6),
        # eta_min above a group's base lr: torch raises that group's lr towards eta_min.
        case("cosine_min_lr_above_group", {"name": "cosine", "min_lr": 2e-5}, s0, 4, 3),
        # Reductions until the 1e-5 group stops at 1e-8 (the next cut, 9e-9, is below torch's
        # eps 1e-8); improvements inside the 1% threshold, a NaN, and a cooldown of 2.
        case("plateau_min", {"name": "plateau", "factor": 0.1, "patience": 2, "threshold": 1e-2,
                             "cooldown": 2},
             s0, 2, 32,
             [1.0, 0.8, 0.7, 0.695, 0.694, 0.70, 0.69, 0.5, 0.499, nan, 0.6, 0.6, 0.6, 0.6,
              0.45, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.44, 0.44, 0.44, 0.44, 0.44, 0.44, 0.3,
              0.3, 0.3, 0.3, 0.3]),
        # Accuracy (auto mode = max), patience 0: every non-improving epoch cuts. min_lr 4e-4
        # floors the head and is above the 1e-5 group, which is never changed.
        case("plateau_max", {"name": "plateau", "monitor": "val/accuracy", "factor": 0.5,
                             "patience": 0, "threshold": 1e-4, "min_lr": 4e-4},
             s0, 1, 8, [50.0, 60.0, 60.004, 61.0, 59.0, 62.0, nan, 61.0]),
    ]
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "schedules.json"), "w") as f:
        json.dump(cases, f, indent=1, allow_nan=False)
        f.write("\n")


if __name__ == "__main__":
    main()
