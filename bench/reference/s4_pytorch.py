#!/usr/bin/env python3
"""One S4 run written the usual PyTorch way (seed 004; ../shared/STUDIES.md S4): the 20-layer
BN MLP on FashionMNIST in the full-batch regime (the official 10k test set is both the
training and the evaluation set, one batch of all of it per step), SGD momentum 0.9, lr 0.1.
One process per strategy and seed, as a notebook user runs them.

  strategy  bn0.1 .. bn0.9 (static momentum), dmbn (per layer and epoch, the candidate
            momentum minimising ESM_mu, seed 004 eq. 4.1, shadows restart from the winner),
            bn-bfn (every second BN replaced by LayerNorm)
  --esm     also measure the estimation shift of every BN layer after every epoch (the
            normlab esm probe's work)

Prints one JSON line: {"strategy", "seed", "test_acc", "wall_s", "esm_mu_sum"}.
Needs only Debian's python3-torch; reads /usr/share/datasets/fashion-mnist.
"""

import argparse
import gzip
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

kCandidates = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
kMean, kStd = 0.2860, 0.3530  # normlab's "fashion-mnist" preset


def load_test_set(root):
    with gzip.open(f"{root}/t10k-images-idx3-ubyte.gz") as f:
        images = torch.frombuffer(bytearray(f.read()[16:]), dtype=torch.uint8)
    with gzip.open(f"{root}/t10k-labels-idx1-ubyte.gz") as f:
        labels = torch.frombuffer(bytearray(f.read()[8:]), dtype=torch.uint8)
    x = images.view(-1, 1, 28, 28).float() / 255.0
    return (x - kMean) / kStd, labels.long()


class DMBN(nn.BatchNorm1d):
    """BatchNorm1d keeping one shadow running estimate per candidate momentum."""

    def __init__(self, n):
        super().__init__(n)
        self.register_buffer("betas", torch.tensor(kCandidates))
        self.register_buffer("shadow_mean", torch.zeros(len(kCandidates), n))
        self.register_buffer("shadow_var", torch.ones(len(kCandidates), n))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                var, mean = torch.var_mean(x, 0, unbiased=True)
                b = self.betas[:, None]
                self.shadow_mean.mul_(1 - b).add_(b * mean)
                self.shadow_var.mul_(1 - b).add_(b * var)
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)

    def adopt(self, pop_mean):
        k = (self.shadow_mean - pop_mean[None]).norm(dim=1).argmin()
        self.running_mean.copy_(self.shadow_mean[k])
        self.running_var.copy_(self.shadow_var[k])
        self.shadow_mean.copy_(self.running_mean.expand_as(self.shadow_mean))
        self.shadow_var.copy_(self.running_var.expand_as(self.shadow_var))


def build(strategy):
    layers, d = [nn.Flatten()], 784
    for i in range(20):
        if strategy == "dmbn":
            norm = DMBN(128)
        elif strategy == "bn-bfn" and i % 2 == 1:
            norm = nn.LayerNorm(128)
        else:
            beta = float(strategy[2:]) if strategy.startswith("bn0") else 0.1
            norm = nn.BatchNorm1d(128, momentum=beta)
        layers += [nn.Linear(d, 128), norm, nn.ReLU()]
        d = 128
    layers.append(nn.Linear(128, 10))
    return nn.Sequential(*layers)


def population_means(model, x):
    """Per BN layer: mean and unbiased variance of its input over x, network in eval mode."""
    stats, hooks = {}, []
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            def hook(mod, inp, out, key=m):
                v, mu = torch.var_mean(inp[0].double(), 0, unbiased=True)
                stats[key] = (mu, v)
            hooks.append(m.register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return stats


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--strategy", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--esm", action="store_true")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = p.parse_args()
    t0 = time.time()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x, y = load_test_set(a.data)
    model = build(a.strategy)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    esm_sum = None
    for epoch in range(a.epochs):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if a.strategy == "dmbn":
            pops = population_means(model, x)
            for m, (mu, _) in pops.items():
                m.adopt(mu.float())
        if a.esm:
            pops = population_means(model, x)
            esm_sum = sum(float((m.running_mean.double() - mu).norm()) for m, (mu, _) in pops.items())
        model.eval()
        with torch.no_grad():
            val_acc = (model(x).argmax(1) == y).float().mean().item()
    with torch.no_grad():
        test_acc = (model(x).argmax(1) == y).float().mean().item()
    print(json.dumps({"strategy": a.strategy, "seed": a.seed, "test_acc": test_acc,
                      "val_acc": val_acc, "esm_mu_sum": esm_sum, "wall_s": time.time() - t0}))


if __name__ == "__main__":
    main()
