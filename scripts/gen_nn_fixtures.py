#!/usr/bin/python3
"""Golden tensors for tests/nn/norm_parity_test.cpp: PyTorch's own norm layers, run once.

Run with the Python that has torch 1.13 (Debian's python3-torch, hence /usr/bin/python3):
    /usr/bin/python3 scripts/gen_nn_fixtures.py
It rewrites tests/fixtures/nn/<case>.pt. Each file is torch.save() of a flat dict (str keys; tensor values except two str),
which LibTorch reads with torch::pickle_load(bytes).toGenericDict(). Keys:
    spec, input_kind       str: the make_norm spelling ("gn:2") and "vector" or "map"
    eps, momentum, train   float64 scalars (train is 0/1)
    x                      input, float32
    weight, bias           affine parameters (random, not the defaults)
    running_mean, running_var           BN only: stats before the forward
    running_mean_after, running_var_after  BN only: stats after the forward
    grad_out               random weights w; the loss is (y * w).sum()
    y                      forward output
    grad_x, grad_weight, grad_bias      gradients of the loss

The references are written independently of how normlab builds the layer where the header
defines a semantics of its own: "ln" on maps is layer_norm over (C, H, W) followed by a
per-channel affine, and "gn:G" on vectors is GroupNorm on (N, C, 1).
"""
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "nn")

# Non-default eps and momentum, so the tests see that NormOptions reach the layers.
EPS = 1e-3
MOMENTUM = 0.3


def save(name, spec, input_kind, train, x, params, forward, buffers=None):
    """params: dict name -> tensor (made leaves here); forward(x, params, buffers) -> y."""
    x = x.clone().requires_grad_(True)
    params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    before = {k: v.clone() for k, v in (buffers or {}).items()}
    y = forward(x, params, buffers)
    grad_out = torch.randn_like(y)
    (y * grad_out).sum().backward()
    d = {
        "spec": spec,
        "input_kind": input_kind,
        "eps": torch.tensor(EPS, dtype=torch.float64),
        "momentum": torch.tensor(MOMENTUM, dtype=torch.float64),
        "train": torch.tensor(1.0 if train else 0.0, dtype=torch.float64),
        "x": x.detach(),
        "grad_out": grad_out,
        "y": y.detach(),
        "grad_x": x.grad,
    }
    for k, v in params.items():
        d[k] = v.detach()
        d["grad_" + k] = v.grad
    for k, v in before.items():
        d[k] = v
        d[k + "_after"] = buffers[k]
    torch.save(d, os.path.join(OUT, name + ".pt"))


def affine(c):
    return {"weight": 1.0 + 0.5 * torch.randn(c), "bias": 0.5 * torch.randn(c)}


def bn_case(name, x, train):
    c = x.shape[1]
    buffers = {"running_mean": 0.3 * torch.randn(c), "running_var": 0.5 + torch.rand(c)}

    def forward(x, p, b):
        return F.batch_norm(x, b["running_mean"], b["running_var"], p["weight"], p["bias"],
                            training=train, momentum=MOMENTUM, eps=EPS)

    input_kind = "vector" if x.dim() == 2 else "map"
    save(name, "bn", input_kind, train, x, affine(c), forward, buffers)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20240611)
    vec = lambda: 2.0 * torch.randn(6, 4) + 0.5          # (N, C)
    img = lambda: 2.0 * torch.randn(4, 4, 3, 3) + 0.5    # (N, C, H, W)

    bn_case("bn1d_train", vec(), True)
    bn_case("bn1d_eval", vec(), False)
    bn_case("bn2d_train", img(), True)
    bn_case("bn2d_eval", img(), False)

    save("ln_vector", "ln", "vector", True, vec(), affine(4),
         lambda x, p, b: F.layer_norm(x, (4,), p["weight"], p["bias"], EPS))

    def ln_map(x, p, b):  # LayerNorm over (C, H, W), then a per-channel affine
        z = F.layer_norm(x, x.shape[1:], None, None, EPS)
        return z * p["weight"].view(1, -1, 1, 1) + p["bias"].view(1, -1, 1, 1)

    save("ln_map", "ln", "map", True, img(), affine(4), ln_map)

    save("gn2_map", "gn:2", "map", True, img(), affine(4),
         lambda x, p, b: F.group_norm(x, 2, p["weight"], p["bias"], EPS))
    save("gn2_vector", "gn:2", "vector", True, vec(), affine(4),
         lambda x, p, b: F.group_norm(x.unsqueeze(-1), 2, p["weight"], p["bias"], EPS).squeeze(-1))
    save("in_map", "in", "map", True, img(), affine(4),
         lambda x, p, b: F.instance_norm(x, None, None, p["weight"], p["bias"], True, 0.1, EPS))


if __name__ == "__main__":
    main()
