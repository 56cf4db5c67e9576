// An in-memory image classification dataset: uint8 pixels and int64 labels, kept on one
// device. Every dataset normlab loads (IDX, CIFAR, synthetic) ends up in this form.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace normlab::data {

struct Dataset {
  std::string name;
  torch::Tensor images;  // (N, C, H, W) uint8
  torch::Tensor labels;  // (N) int64, values in [0, num_classes)
  int64_t num_classes = 0;
  std::vector<std::string> class_names;  // size num_classes (may be "0".."k-1")

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  // Throws Error naming `name` if shapes, dtypes or label range are inconsistent.
  void validate() const;
};

// Rows `indices` (int64, any device) of `ds`; class names and count unchanged.
Dataset subset(const Dataset& ds, const torch::Tensor& indices);

// Keeps only samples whose label is in `classes` and relabels them 0..k-1 in the order
// listed (classes {5,6,7} -> labels {0,1,2}). Throws Error on an out-of-range or repeated
// class.
Dataset select_classes(const Dataset& ds, const std::vector<int64_t>& classes);

struct Split {
  torch::Tensor train;  // (N_train) int64 indices, sorted ascending
  torch::Tensor val;    // (N_val) int64 indices, sorted ascending
};

// Deterministic stratified split: each class contributes round(val_fraction * n_c) samples
// to val, chosen by a permutation drawn from `seed`. Same inputs -> same split.
Split stratified_split(const torch::Tensor& labels, int64_t num_classes, double val_fraction,
                       uint64_t seed);

}  // namespace normlab::data
