#!/usr/bin/env python3
"""Checks that the expert S0 peer does what the naive one does.

  /usr/bin/python3 bench/test_s0_peers.py

- the expert's batched preprocessing (two-pass bilinear F.interpolate with uint8 rounding,
  then (x/255 - 128/255) / (128/255)) gives bit-identical inputs to the naive peer's
  PIL Resize + ToTensor + Normalize, on real CIFAR-10 images;
- its batched flip + crop equals flipping and cropping each image by hand;
- BN recalibration through the expert's path (channels_last, batched preprocessing) gives the
  naive peer's statistics.
The tests that need ../shared/data (CIFAR-10 binaries, the MobileNetV2 weights) are skipped
without it. Takes about 10 s on 2 cores.
"""

import itertools
import os
import sys
import unittest

import torch
import torch.nn.functional as F

kHere = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(kHere, "reference"))
import s0_expert as expert  # noqa: E402
import s0_pytorch as naive  # noqa: E402

kShared = os.path.normpath(os.path.join(kHere, "..", "..", "shared", "data"))
kCifar = os.path.join(kShared, "cifar-10-batches-bin")
kWeights = os.path.join(kShared, "weights",
                        "mobilenet_v2_imagenet_tflite_qat_dequant.safetensors")
kImages = 32


def first_images(n):
    """The first n training images, both ways: naive Dataset (val transform) and uint8."""
    files = [os.path.join(kCifar, "data_batch_1.bin")]
    _, val_tf = naive.make_transforms("faithful")
    ds = naive.CifarBinary(files, val_tf)
    x_naive = torch.stack([ds[i][0] for i in range(n)])
    y_naive = torch.tensor([ds[i][1] for i in range(n)])
    images, labels = expert.load_cifar(files)
    return x_naive, y_naive, images[:n], labels[:n]


@unittest.skipUnless(os.path.exists(kCifar), f"no {kCifar}")
class TestPreprocessing(unittest.TestCase):
    def test_inputs_bit_identical(self):
        torch.set_num_threads(2)
        x_naive, y_naive, images, labels = first_images(kImages)
        self.assertTrue(torch.equal(y_naive, labels))
        x_expert = expert.to_input(images)
        self.assertEqual(tuple(x_expert.shape), (kImages, 3, 224, 224))
        self.assertTrue(x_expert.is_contiguous(memory_format=torch.channels_last))
        self.assertTrue(torch.equal(x_naive, x_expert),
                        f"max |diff| {(x_naive - x_expert).abs().max().item()}")


class TestAugment(unittest.TestCase):
    def test_flip_and_crop_per_image(self):
        x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
        torch.manual_seed(3)
        got = expert.augment(x, crop=True)
        torch.manual_seed(3)  # the same draws, in augment's order
        flip = torch.rand(16) < 0.5
        top, left = torch.randint(0, 9, (16,)), torch.randint(0, 9, (16,))
        for i in range(16):
            xi = x[i].flip(2) if flip[i] else x[i]
            want = F.pad(xi, (4, 4, 4, 4))[:, top[i]:top[i] + 32, left[i]:left[i] + 32]
            self.assertTrue(torch.equal(got[i], want), i)
        self.assertTrue(0 < int(flip.sum()) < 16)

    def test_flip_only(self):
        x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
        torch.manual_seed(4)
        got = expert.augment(x, crop=False)
        torch.manual_seed(4)
        flip = torch.rand(16) < 0.5
        for i in range(16):
            self.assertTrue(torch.equal(got[i], x[i].flip(2) if flip[i] else x[i]))


@unittest.skipUnless(os.path.exists(kCifar) and os.path.exists(kWeights), "no shared data")
class TestRecalibration(unittest.TestCase):
    def test_same_statistics(self):
        torch.set_num_threads(2)
        x_naive, _, images, labels = first_images(kImages)
        m_naive = naive.build_model(kWeights, "bn")
        naive.recalibrate_bn(m_naive, [(x_naive, None)], 20, "backbone")
        m_expert = naive.build_model(kWeights, "bn").to(memory_format=torch.channels_last)
        calib = ((expert.to_input(images[idx]), labels[idx])
                 for idx in expert.batches(len(labels), kImages))
        naive.recalibrate_bn(m_expert, itertools.islice(calib, 20), 20, "backbone")
        worst = 0.0
        for a, b in zip(m_naive.modules(), m_expert.modules()):
            if isinstance(a, torch.nn.BatchNorm2d):
                for s, t in ((a.running_mean, b.running_mean), (a.running_var, b.running_var)):
                    worst = max(worst, ((s - t).abs() / (s.abs() + s.abs().mean())).max().item())
        # only the summation order differs (channels_last kernels); relative to each value
        # plus its layer's mean magnitude (some channel means are ~0)
        self.assertLess(worst, 1e-4, worst)
        print(f"worst relative difference {worst:.2g}", end=" ... ", file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
