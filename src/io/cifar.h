// CIFAR-10 / CIFAR-100 binary format: records of label byte(s) + 3072 pixel bytes
// (R, G, B planes of 32x32, row-major).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace normlab::io {

enum class CifarKind { kCifar10, kCifar100 };

struct CifarArrays {
  torch::Tensor images;  // (N, 3, 32, 32) uint8
  torch::Tensor labels;  // (N) int64 (fine labels for CIFAR-100)
};

// Reads one or more batch files and concatenates them. Refuses (Error naming the file) a
// size that is not a whole number of records, an empty file, or a label out of range
// (>= 10, or >= 20 coarse / >= 100 fine for CIFAR-100).
CifarArrays read_cifar(const std::vector<std::string>& paths, CifarKind kind);

}  // namespace normlab::io
