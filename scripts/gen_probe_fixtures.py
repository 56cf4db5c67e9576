#!/usr/bin/python3
"""Golden values for tests/probe/esm_test.cpp: BatchNorm estimation shift computed by PyTorch.

Run with the Python that has torch 1.13 (Debian's python3-torch, hence /usr/bin/python3):
    /usr/bin/python3 scripts/gen_probe_fixtures.py
It rewrites tests/fixtures/probe/esm_mlp.pt, torch.save() of a flat dict (str keys, tensor
values) that LibTorch reads with torch::pickle_load(bytes).toGenericDict(), as the other
fixtures. The model is normlab's mlp backbone with a linear head, module for module
(features.0 = Flatten, features.<i> = Linear -> BatchNorm1d -> ReLU, head.0 = Linear), so its
state_dict keys are normlab's parameter and buffer names. Keys:
    model.<name>           the state after training: every parameter and buffer
    x                      (N, 1, H, W) float32, the evaluation split
    batch_sizes            int64, how the test feeds x to the probe (the split's batches)
    layers                 int64 indices i of the BN layers features.<i>.1, in order
    pop_mean.<layer>, pop_var.<layer>    float64 population statistics of the layer's input
                                         over x, network in eval mode (variance unbiased)
    esm_mu.<layer>, esm_sigma.<layer>    float64 ()  ||running_mean - pop_mean||_2 and
                                         ||sqrt(running_var) - sqrt(pop_var)||_2
    esm_mu_sum, esm_sigma_sum            float64 ()  sums over layers
The model trains 3 SGD steps in train mode on data of another distribution than x, so the
running estimates (momentum 0.1) are far from the population statistics of x.
"""
import os

import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "probe")

HW = 6
WIDTH = 16
DEPTH = 3
CLASSES = 4


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        blocks = [nn.Flatten()]
        fan_in = HW * HW
        for _ in range(DEPTH):
            blocks.append(nn.Sequential(nn.Linear(fan_in, WIDTH), nn.BatchNorm1d(WIDTH), nn.ReLU()))
            fan_in = WIDTH
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Linear(fan_in, CLASSES))

    def forward(self, x):
        return self.head(self.features(x))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20240704)
    model = Mlp()
    x_train = 1.3 * torch.randn(3, 32, 1, HW, HW) + 0.4
    y_train = torch.randint(0, CLASSES, (3, 32))
    x_eval = 0.8 * torch.randn(50, 1, HW, HW) - 0.2

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for step in range(3):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x_train[step]), y_train[step])
        loss.backward()
        optimizer.step()

    # Population statistics of each BN's input over the evaluation split, in eval mode.
    model.eval()
    inputs = {}
    hooks = []
    for i in range(1, DEPTH + 1):
        bn = model.features[i][1]
        hooks.append(bn.register_forward_hook(
            lambda m, args, out, i=i: inputs.setdefault(i, []).append(args[0].detach())))
    with torch.no_grad():
        for chunk in torch.split(x_eval, [20, 20, 10]):
            model(chunk)
    for h in hooks:
        h.remove()

    d = {"model." + k: v.clone() for k, v in model.state_dict().items()}
    d["x"] = x_eval
    d["batch_sizes"] = torch.tensor([20, 20, 10], dtype=torch.int64)
    d["layers"] = torch.arange(1, DEPTH + 1, dtype=torch.int64)
    mu_sum = torch.zeros((), dtype=torch.float64)
    sigma_sum = torch.zeros((), dtype=torch.float64)
    for i in range(1, DEPTH + 1):
        layer = "features.%d.1" % i
        v = torch.cat(inputs[i]).double()
        mean, var = v.mean(0), v.var(0, unbiased=True)
        bn = model.features[i][1]
        mu = (bn.running_mean.double() - mean).norm()
        sigma = (bn.running_var.double().sqrt() - var.sqrt()).norm()
        d["pop_mean." + layer] = mean
        d["pop_var." + layer] = var
        d["esm_mu." + layer] = mu
        d["esm_sigma." + layer] = sigma
        mu_sum += mu
        sigma_sum += sigma
    d["esm_mu_sum"] = mu_sum
    d["esm_sigma_sum"] = sigma_sum
    torch.save(d, os.path.join(OUT, "esm_mlp.pt"))


if __name__ == "__main__":
    main()
