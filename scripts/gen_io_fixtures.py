#!/usr/bin/python3
"""Fixtures for tests/io/{state_dict,pickle,zip,safetensors,weights_fuzz}_test.cpp.

Run with the Python that has torch 1.13 (Debian's python3-torch, hence /usr/bin/python3):
    /usr/bin/python3 scripts/gen_io_fixtures.py
It rewrites tests/fixtures/io/:
    small_state_dict.pth          torch.save(state_dict) of a conv + BN + linear net (an
                                  OrderedDict with _metadata, int64 num_batches_tracked) plus
                                  extra entries: a strided view sharing storage with another
                                  entry, a transposed tensor, fp16, bf16, f64, int, bool, a
                                  0-dim and an empty tensor. Saved to a file: the zip's top
                                  folder is the file stem.
    small_state_dict_archive.pth  the same bytes-for-tensors, saved through a BytesIO: the top
                                  folder is "archive".
    small_state_dict.safetensors  the same tensors, written by hand (no safetensors package)
                                  following https://github.com/huggingface/safetensors#format
    small_state_dict_expected.pt  a plain dict of contiguous clones of the same tensors, which
                                  LibTorch reads with torch::pickle_load: the reference values.
    nested_checkpoint.pth         {"model": {2 tensors}, "epoch": 3}: unwrapped by the loader.
    non_tensor_value.pth          {"weight": tensor, "epoch": 3}: refused, naming "epoch".
    whole_module.pth              torch.save(nn.Linear): pickles a class, must be refused.
    legacy_format.pth             the pre-1.6 non-zip format: refused with a hint.
"""
import collections
import io
import json
import os
import struct

import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "io")

# safetensors dtype names (https://github.com/huggingface/safetensors, Dtype enum).
SAFETENSORS_DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def small_state_dict():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Flatten(), nn.Linear(16, 5))
    net.train()
    net(torch.randn(2, 3, 4, 4))  # updates running stats; num_batches_tracked becomes 1
    sd = net.state_dict()  # OrderedDict carrying a _metadata attribute
    assert hasattr(sd, "_metadata")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd["extra.base"] = base
    sd["extra.view"] = base[1:, 1:4:2]  # shares base's storage: offset 7, strides (6, 2)
    sd["extra.transposed"] = torch.randn(3, 5).t()
    sd["extra.half"] = torch.randn(3, 2).half()
    sd["extra.bf16"] = torch.randn(2, 3).bfloat16()
    sd["extra.double"] = torch.randn(4, dtype=torch.float64)
    sd["extra.int64"] = torch.tensor([-(2**40), 0, 2**62], dtype=torch.int64)
    sd["extra.int32"] = torch.tensor([-7, 0, 2**31 - 1], dtype=torch.int32)
    sd["extra.int16"] = torch.tensor([-300, 12], dtype=torch.int16)
    sd["extra.int8"] = torch.tensor([-128, 127], dtype=torch.int8)
    sd["extra.uint8"] = torch.tensor([0, 255, 3], dtype=torch.uint8)
    sd["extra.bool"] = torch.tensor([True, False, True])
    sd["extra.scalar"] = torch.tensor(2.5)
    sd["extra.empty"] = torch.zeros(0, 3)
    return sd


def raw_bytes(t):
    t = t.contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    return t.view(torch.uint8).numpy().tobytes()  # little-endian host


def write_safetensors(path, tensors, metadata):
    header = collections.OrderedDict()
    header["__metadata__"] = metadata
    chunks, offset = [], 0
    for name, t in tensors.items():
        b = raw_bytes(t)
        header[name] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the reference writer pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in chunks:
            f.write(b)


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = small_state_dict()
    torch.save(sd, os.path.join(OUT, "small_state_dict.pth"))
    buf = io.BytesIO()
    torch.save(sd, buf)
    with open(os.path.join(OUT, "small_state_dict_archive.pth"), "wb") as f:
        f.write(buf.getvalue())
    expected = {k: v.clone().contiguous() for k, v in sd.items()}
    torch.save(expected, os.path.join(OUT, "small_state_dict_expected.pt"))
    write_safetensors(os.path.join(OUT, "small_state_dict.safetensors"), expected,
                      {"format": "pt", "source": "scripts/gen_io_fixtures.py"})

    torch.save({"model": collections.OrderedDict(
        [("fc.weight", torch.arange(6.0).reshape(2, 3)), ("fc.bias", torch.tensor([0.5, -1.0]))]),
        "epoch": 3}, os.path.join(OUT, "nested_checkpoint.pth"))
    torch.save({"weight": torch.ones(2), "epoch": 3}, os.path.join(OUT, "non_tensor_value.pth"))
    torch.save(nn.Linear(2, 2), os.path.join(OUT, "whole_module.pth"))
    torch.save({"weight": torch.ones(2)}, os.path.join(OUT, "legacy_format.pth"),
               _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    main()
