// Histograms computed on the device, without a host synchronisation: a histogram is packed
// into one float64 tensor (counts and running statistics) that can be merged with another
// (accumulating a histogram over an epoch's steps) and is copied to the host only when the
// recorder flushes an epoch. The bins are fixed in advance, so histograms of different
// epochs, runs and configurations of a study share their edges and can be compared bin by bin.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "store/records.h"

namespace normlab::train {

// Fixed bins: `bins` equal-width bins over [lo, hi] of the value (scale "linear") or of
// log10 |value| (scale "log10", for gradients spanning decades). Values outside [lo, hi]
// land in the first or last bin (store::Histogram documents this).
struct BinSpec {
  std::string scale = "linear";
  double lo = -1;
  double hi = 1;
  int64_t bins = 64;  // W&B's default for wandb.Histogram
  std::vector<double> edges() const;
};

// Packed layout, (bins + 6) float64: counts[bins], count, nonfinite, min, max, sum, sum_sq.
// min/max are +inf/-inf while count is 0.
constexpr int64_t kPackedStats = 6;

// Histogram of every element of `values` (any shape, float dtype, any device) -> packed.
torch::Tensor histogram_packed(const torch::Tensor& values, const BinSpec& spec);

// The packed histogram of the union of two packed histograms (same BinSpec).
torch::Tensor merge_packed(const torch::Tensor& a, const torch::Tensor& b);

// Host form of a packed histogram (`packed` points at bins + kPackedStats doubles).
store::Histogram unpack_histogram(const double* packed, const BinSpec& spec);

}  // namespace normlab::train
