#!/usr/bin/python3
"""Training-step references for tests/train/step_parity_test.cpp: PyTorch runs ten training
steps of the studies' trainable tails, and records everything a step computes.

Run with the Python that has torch 1.13 and torchvision 0.14 (Debian's python3-torch and
python3-torchvision, hence /usr/bin/python3):
    /usr/bin/python3 scripts/gen_step_fixtures.py OUT_DIR
The test runs this at test time into a temporary folder: each case's expected tensors
(gradients, Adam moments, updated weights of a 1280-wide features.18 and head) are a few MB,
too many to commit for 18 cases. The generator is deterministic (fixed seeds, one thread).

Cases (OUT_DIR/<case>.pt, torch.save() of a flat dict; nested dicts hold tensors by name):
  s0_<norm>_clip<c>_<frozen_bn>  S0's tail: torchvision MobileNetV2 (width 0.25, 64x64 inputs)
      whose classifier is the S0 head Linear(1280, 16) -> norm -> ReLU -> Dropout(0) ->
      Linear(16, 10), norm in {bn, ln, frn}; features.18 and the head train with Adam in two
      learning-rate groups (features.18 1e-4, head 1e-3); global-norm clipping at c in {0, 0.1};
      frozen_bn "update" (model.train(): every BN uses batch statistics) or "freeze" (the BNs
      of features.0-17, which do not train, in eval mode).
  s3_<frozen_bn>  S3's tail: the norm_mlp head BatchNorm1d(1280) -> Linear(1280, 16) -> ReLU ->
      Dropout(0) -> Linear(16, 10); AdamW (lr 1e-3, weight decay 4e-3, eps 1e-7); label
      smoothing 0.05; features.18 and the head train.
  s4_m<momentum>_<trainable>_<frozen_bn>  S4's MLP: Flatten -> 4 x (Linear(., 16) -> BN ->
      ReLU) -> Linear(16, 10) on 1x8x8 inputs; SGD (lr 0.1, momentum 0.9); BN momentum 0.1 or
      0.8 (PyTorch's convention: new = (1 - m) old + m batch); everything trains ("all"), or
      only features.3, features.4 and the head ("top") so that frozen BNs exist.
Keys of each file:
  model: "s0" | "s3" | "s4"; norm, frozen_bn, optimizer: str; trainable: str, comma-separated
  clip, lr, group_lr, weight_decay, eps, momentum, label_smoothing, bn_momentum, hidden,
      width_mult, depth, width, hw, channels: float64 scalars (0 where unused)
  state: the initial parameters and buffers (normlab's names: torchvision's, classifier ->
      head), random BN statistics and affine parameters so eval-mode BN matters
  x: (steps, B, C, H, W) float32 inputs; y: (steps, B) int64 labels; one batch per step
  loss, pre_clip_norm: (steps) float32 per step
  grad1: raw gradients of step 1 (trainable parameters); clipped1: after clipping
  param1, state1: parameters and buffers after step 1 (every BN's running statistics)
  param10, state10: after step 10
  opt1, opt10: optimizer state, "<name>/exp_avg", "<name>/exp_avg_sq" (Adam, AdamW) or
      "<name>/momentum_buffer" (SGD), after steps 1 and 10
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

kSteps = 10
kBatch = 16
# 64x64 inputs: features.18 sees 2x2 maps, so each of its train-mode BN channels normalises
# 64 values; at 32x32 (1x1 maps, 16 values) a 1e-7 change of its input moved gradients by 20%.
kHw = 64
kHidden = 16
kClasses = 10

# FRN for (N, C) vectors, as normlab's head slot "frn" (src/nn/frn.cpp): eps = 1e-6 + |eps_l|,
# eps_l learned from 1e-4 (Singh & Krishnan 2020, section 3.2).
kFrnEps0 = 1e-6


class FrnVector(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.tau = nn.Parameter(torch.zeros(c))
        self.eps_l = nn.Parameter(torch.full((1,), 1e-4))

    def forward(self, x):
        x_hat = x * torch.rsqrt(x.pow(2) + kFrnEps0 + self.eps_l.abs())
        return torch.maximum(self.weight * x_hat + self.bias, self.tau)


def make_norm(name, c, momentum=0.1):
    if name == "bn":
        return nn.BatchNorm1d(c, momentum=momentum)
    if name == "ln":
        return nn.LayerNorm(c)
    if name == "frn":
        return FrnVector(c)
    raise ValueError(name)


def randomize_norms(model, gen):
    """Random running statistics and affine parameters of every BN (and LN affine)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                c = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                m.weight.copy_(1.0 + 0.2 * torch.randn(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
                m.num_batches_tracked.fill_(3)
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(1.0 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))


def s0_model(norm, head_kind):
    model = torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=kClasses)
    if head_kind == "mlp":
        model.classifier = nn.Sequential(nn.Linear(1280, kHidden), make_norm(norm, kHidden),
                                         nn.ReLU(), nn.Dropout(0.0), nn.Linear(kHidden, kClasses))
    else:  # norm_mlp (S3)
        model.classifier = nn.Sequential(make_norm(norm, 1280), nn.Linear(1280, kHidden),
                                         nn.ReLU(), nn.Dropout(0.0), nn.Linear(kHidden, kClasses))
    return model


class Mlp(nn.Module):
    """normlab's "mlp" backbone + linear head, with its module names."""

    def __init__(self, depth, width, in_features, momentum):
        super().__init__()
        blocks = [nn.Flatten()]
        for _ in range(depth):
            blocks.append(nn.Sequential(nn.Linear(in_features, width),
                                        nn.BatchNorm1d(width, momentum=momentum), nn.ReLU()))
            in_features = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Linear(width, kClasses))

    def forward(self, x):
        return self.head(self.features(x))


def normlab_name(name):
    return "head." + name[len("classifier."):] if name.startswith("classifier.") else name


def trains(name, patterns):
    return any(name == p or name.startswith(p + ".") for p in patterns)


def set_train_mode(model, frozen_bn, patterns):
    model.train()
    if frozen_bn == "freeze":
        for name, m in model.named_modules():
            is_bn = isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))
            if is_bn and not trains(normlab_name(name), patterns):
                m.eval()


def state_of(model):
    return {normlab_name(k): v.detach().clone() for k, v in model.state_dict().items()}


def run_case(path, model, cfg, x, y):
    """Ten steps of `model` on batches x[i], y[i]; writes the fixture to `path`."""
    patterns = cfg["trainable"]
    named = [(normlab_name(n), p) for n, p in model.named_parameters()]
    trainable = [(n, p) for n, p in named if trains(n, patterns)]
    for n, p in named:
        p.requires_grad_(trains(n, patterns))
    group_pattern = cfg.get("group_pattern")
    if group_pattern:  # the first group as normlab plans it: the rule's matches, then the rest
        first = [p for n, p in trainable if trains(n, [group_pattern])]
        rest = [p for n, p in trainable if not trains(n, [group_pattern])]
        groups = [{"params": first, "lr": cfg["group_lr"]}, {"params": rest}]
    else:
        groups = [{"params": [p for _, p in trainable]}]
    opt = cfg["optimizer"]
    if opt == "adam":
        optimizer = torch.optim.Adam(groups, lr=cfg["lr"], eps=cfg["eps"])
    elif opt == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=cfg["lr"], eps=cfg["eps"],
                                      weight_decay=cfg["weight_decay"])
    else:
        optimizer = torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"])
    out = {"state": state_of(model), "x": x, "y": y}
    losses, norms = [], []
    for step in range(kSteps):
        set_train_mode(model, cfg["frozen_bn"], patterns)
        optimizer.zero_grad()
        logits = model(x[step])
        loss = F.cross_entropy(logits, y[step], label_smoothing=cfg["label_smoothing"])
        loss.backward()
        if step == 0:
            out["grad1"] = {n: p.grad.detach().clone() for n, p in trainable}
        params = [p for _, p in trainable]
        if cfg["clip"] > 0:
            total = torch.nn.utils.clip_grad_norm_(params, cfg["clip"])
        else:
            total = torch.norm(torch.stack([p.grad.detach().norm(2) for p in params]), 2)
        if step == 0:
            out["clipped1"] = {n: p.grad.detach().clone() for n, p in trainable}
        optimizer.step()
        losses.append(loss.detach())
        norms.append(total.detach().float())
        if step in (0, kSteps - 1):
            tag = "1" if step == 0 else str(kSteps)
            out["param" + tag] = {n: p.detach().clone() for n, p in trainable}
            out["state" + tag] = state_of(model)
            state = {}
            for n, p in trainable:
                for k, v in optimizer.state[p].items():
                    if k != "step":
                        state[n + "/" + k] = v.detach().clone()
            out["opt" + tag] = state
    out["loss"] = torch.stack(losses)
    out["pre_clip_norm"] = torch.stack(norms)
    for k in ("norm", "frozen_bn", "optimizer", "model"):
        out[k] = cfg[k]
    out["trainable"] = ",".join(patterns)
    for k in ("clip", "lr", "group_lr", "weight_decay", "eps", "momentum", "label_smoothing",
              "bn_momentum", "hidden", "width_mult", "depth", "width", "hw", "channels"):
        out[k] = torch.tensor(float(cfg.get(k, 0.0)), dtype=torch.float64)
    torch.save(out, path)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_step_fixtures.py OUT_DIR")
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    cases = 0
    for norm in ("bn", "ln", "frn"):
        for clip in (0.0, 0.1):
            for frozen in ("update", "freeze"):
                torch.manual_seed(1)
                gen = torch.Generator().manual_seed(2)
                model = s0_model(norm, "mlp")
                randomize_norms(model, gen)
                x = torch.randn(kSteps, kBatch, 3, kHw, kHw, generator=gen)
                y = torch.randint(0, kClasses, (kSteps, kBatch), generator=gen)
                cfg = {"model": "s0", "norm": norm, "frozen_bn": frozen, "optimizer": "adam",
                       "trainable": ["features.18", "head"], "group_pattern": "features.18",
                       "clip": clip, "lr": 1e-3, "group_lr": 1e-4, "eps": 1e-8,
                       "label_smoothing": 0.0, "hidden": kHidden, "width_mult": 0.25,
                       "hw": kHw, "channels": 3}
                name = f"s0_{norm}_clip{clip:g}_{frozen}"
                run_case(os.path.join(out_dir, name + ".pt"), model, cfg, x, y)
                cases += 1
    for frozen in ("update", "freeze"):
        torch.manual_seed(3)
        gen = torch.Generator().manual_seed(4)
        model = s0_model("bn", "norm_mlp")
        randomize_norms(model, gen)
        x = torch.randn(kSteps, kBatch, 3, kHw, kHw, generator=gen)
        y = torch.randint(0, kClasses, (kSteps, kBatch), generator=gen)
        cfg = {"model": "s3", "norm": "bn", "frozen_bn": frozen, "optimizer": "adamw",
               "trainable": ["features.18", "head"], "clip": 0.0, "lr": 1e-3,
               "weight_decay": 4e-3, "eps": 1e-7, "label_smoothing": 0.05, "hidden": kHidden,
               "width_mult": 0.25, "hw": kHw, "channels": 3}
        run_case(os.path.join(out_dir, f"s3_{frozen}.pt"), model, cfg, x, y)
        cases += 1
    for momentum in (0.1, 0.8):
        for trainable, frozen in (("all", "update"), ("top", "update"), ("top", "freeze")):
            torch.manual_seed(5)
            gen = torch.Generator().manual_seed(6)
            model = Mlp(4, 16, 64, momentum)
            randomize_norms(model, gen)
            x = torch.randn(kSteps, 32, 1, 8, 8, generator=gen)
            y = torch.randint(0, kClasses, (kSteps, 32), generator=gen)
            patterns = (["features", "head"] if trainable == "all" else
                        ["features.3", "features.4", "head"])
            cfg = {"model": "s4", "norm": "bn", "frozen_bn": frozen, "optimizer": "sgd",
                   "trainable": patterns, "clip": 0.0, "lr": 0.1, "momentum": 0.9,
                   "label_smoothing": 0.0, "bn_momentum": momentum, "depth": 4, "width": 16,
                   "hw": 8, "channels": 1}
            name = f"s4_m{momentum:g}_{trainable}_{frozen}"
            run_case(os.path.join(out_dir, name + ".pt"), model, cfg, x, y)
            cases += 1
    print(f"wrote {cases} step fixtures to {out_dir}")


if __name__ == "__main__":
    main()
