#!/usr/bin/python3
"""PIL's bilinear resize of 8-bit images, for tests/data/pil_resize_test.cpp.

Run with Debian's Python (python3-pil, python3-torch: /usr/bin/python3):
    /usr/bin/python3 scripts/gen_resize_fixtures.py
It rewrites tests/fixtures/data/pil_resize.pt (~0.2 MB), torch.save() of a flat dict of uint8
(N, C, H, W) tensors:
    x_<case>, y_<case>   input and Image.resize((w, h), Image.BILINEAR) of each RGB image
Cases: "cifar" (a real-looking 32x32 image, smooth gradients plus noise, to 224x224 as S0
does), "up" (20x24 -> 50x56), "down" (20x24 -> 9x11: support > 1, more taps), "wide"
(20x24 -> 20x40: one pass only).
"""
import os

import numpy as np
import torch
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "data")


def resize(x, h, w):
    """x: (N, 3, H, W) uint8 -> (N, 3, h, w) uint8 through PIL."""
    out = []
    for im in x.numpy():
        pil = Image.fromarray(np.ascontiguousarray(im.transpose(1, 2, 0)), mode="RGB")
        out.append(np.asarray(pil.resize((w, h), Image.BILINEAR)).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out).copy())


def main():
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    smooth = (128 + 100 * torch.sin(yy / 5) * torch.cos(xx / 7)).expand(1, 3, 32, 32)
    cifar = (smooth + 30 * torch.randn(1, 3, 32, 32, generator=gen)).clamp(0, 255).to(
        torch.uint8)
    small = torch.randint(0, 256, (2, 3, 20, 24), generator=gen, dtype=torch.uint8)
    out = {}
    for name, x, h, w in (("cifar", cifar, 224, 224), ("up", small, 50, 56),
                          ("down", small, 9, 11), ("wide", small, 20, 40)):
        out["x_" + name] = x
        out["y_" + name] = resize(x, h, w)
    os.makedirs(OUT, exist_ok=True)
    torch.save(out, os.path.join(OUT, "pil_resize.pt"))
    print("wrote", os.path.join(OUT, "pil_resize.pt"))


if __name__ == "__main__":
    main()
