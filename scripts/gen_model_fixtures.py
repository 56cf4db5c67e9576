#!/usr/bin/python3
"""Golden outputs of torchvision backbones for tests/models/fidelity_test.cpp.

Run with the Python that has torch 1.13 and torchvision 0.14 (Debian's python3-torch and
python3-torchvision, hence /usr/bin/python3):
    /usr/bin/python3 scripts/gen_model_fixtures.py
        rewrites tests/fixtures/models/mobilenet_v2.pt (committed, ~0.3 MB)
    /usr/bin/python3 scripts/gen_model_fixtures.py --runtime DIR
        writes DIR/{resnet18,resnet50,resnet18_cifar,resnet50_cifar}.pt; the ResNet state
        dicts are 45-100 MB, too big to commit, so the C++ test runs this at test time.
Each file is torch.save() of a plain dict, read in C++ with torch::pickle_load(bytes):
    state_dict   dict(model.state_dict()): random weights AND random BN running stats and
                 affine parameters (so eval-mode BN is exercised), torchvision's key names
    x, y         a fixed random input and the eval-mode output (logits)
    backbone     str: the normlab backbone name; num_classes, width_mult as float64 scalars
mobilenet_v2.pt also holds the TF 'SAME' padding reference (weights converted from TF/Keras,
/work/shared/data/README.md): the stride-2 3x3 convs get padding 0 and their input is
zero-padded by TF's rule, total = max((ceil(n/s) - 1) * s + k - n, 0), the odd pixel after
(right/bottom) -- (0, 1) for even sizes:
    y_tf         output of that model for x (64x64: every stride-2 conv sees an even size)
    x_odd, y_odd_tf   a 45x45 input, where sizes 45 and 23 are odd (padding (1, 1))
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
NUM_CLASSES = 10
MOBILENET_WIDTH = 0.25  # keeps the committed state dict small


def randomize(model):
    """Random weights (torchvision's init, seeded) and random BN statistics and affine."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(0.2 * torch.randn(c))
            m.running_var.copy_(0.5 + torch.rand(c))
            m.weight.data.copy_(1.0 + 0.2 * torch.randn(c))
            m.bias.data.copy_(0.2 * torch.randn(c))
            m.num_batches_tracked.fill_(7)
        elif isinstance(m, nn.Linear):
            m.weight.data.normal_(0.0, 0.05)
            m.bias.data.normal_(0.0, 0.05)
    return model.eval()


def tf_same_pad(n, k, s):
    out = (n + s - 1) // s
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def make_tf_same(model):
    """Pads the stride-2 3x3 convs' input like TF 'SAME' (a pre-hook keeps the keys)."""
    names = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
            names.append(name)
            m.padding = (0, 0)

            def hook(mod, inputs):
                x = inputs[0]
                top, bottom = tf_same_pad(x.shape[2], mod.kernel_size[0], mod.stride[0])
                left, right = tf_same_pad(x.shape[3], mod.kernel_size[1], mod.stride[1])
                return (F.pad(x, (left, right, top, bottom)),)

            m.register_forward_pre_hook(hook)
    expected = ["features.0.0", "features.2.conv.1.0", "features.4.conv.1.0",
                "features.7.conv.1.0", "features.14.conv.1.0"]
    assert names == expected, names
    return model


def save(path, backbone, model, x, extra=None, width_mult=1.0):
    with torch.no_grad():
        y = model(x)
    d = {
        "backbone": backbone,
        "num_classes": torch.tensor(float(NUM_CLASSES), dtype=torch.float64),
        "width_mult": torch.tensor(width_mult, dtype=torch.float64),
        "state_dict": dict(model.state_dict()),
        "x": x,
        "y": y,
    }
    d.update(extra or {})
    torch.save(d, path)


def mobilenet(out_dir):
    torch.manual_seed(20240612)
    model = randomize(torchvision.models.mobilenet_v2(num_classes=NUM_CLASSES,
                                                      width_mult=MOBILENET_WIDTH))
    x = torch.randn(2, 3, 64, 64)
    x_odd = torch.randn(1, 3, 45, 45)
    tf = make_tf_same(randomize(torchvision.models.mobilenet_v2(num_classes=NUM_CLASSES,
                                                               width_mult=MOBILENET_WIDTH)))
    tf.load_state_dict(model.state_dict())
    with torch.no_grad():
        extra = {"y_tf": tf(x), "x_odd": x_odd, "y_odd_tf": tf(x_odd)}
    save(os.path.join(out_dir, "mobilenet_v2.pt"), "mobilenet_v2", model, x, extra,
         MOBILENET_WIDTH)


def cifar_resnet(builder):
    """The usual CIFAR adaptation: 3x3 stride-1 stem, no max-pool; keys unchanged."""
    model = builder(num_classes=NUM_CLASSES)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def resnets(out_dir):
    torch.manual_seed(20240613)
    models = torchvision.models
    cases = [
        ("resnet18", models.resnet18(num_classes=NUM_CLASSES), (1, 3, 64, 64)),
        ("resnet50", models.resnet50(num_classes=NUM_CLASSES), (1, 3, 64, 64)),
        ("resnet18_cifar", cifar_resnet(models.resnet18), (2, 3, 32, 32)),
        ("resnet50_cifar", cifar_resnet(models.resnet50), (1, 3, 32, 32)),
    ]
    for name, model, shape in cases:
        save(os.path.join(out_dir, name + ".pt"), name, randomize(model), torch.randn(*shape))


def main():
    torch.set_num_threads(1)
    if len(sys.argv) == 3 and sys.argv[1] == "--runtime":
        os.makedirs(sys.argv[2], exist_ok=True)
        resnets(sys.argv[2])
    elif len(sys.argv) == 1:
        os.makedirs(OUT, exist_ok=True)
        mobilenet(OUT)
    else:
        sys.exit("usage: gen_model_fixtures.py [--runtime DIR]")


if __name__ == "__main__":
    main()
