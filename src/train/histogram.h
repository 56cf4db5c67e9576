// Histograms computed on the device, without a host synchronisation: a histogram is packed
// into one float64 row (counts and running statistics) that can be merged with another
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

// Packed row, (bins + 6) float64: counts[bins], count, nonfinite, sum, sum_sq, min, max. The
// first bins + 4 entries add when histograms merge; min/max are +inf/-inf while count is 0.
constexpr int64_t kPackedStats = 6;

// Histograms of a fixed list of tensors, and of groups of them (e.g. the parameters of one
// layer). On the CPU: one plain loop over each tensor's elements (fixed chunks of each tensor
// may run in parallel; their partial sums merge in a fixed order, so results do not depend on
// the thread count). Elsewhere: tensor operations over all elements at once, a bincount and
// per-tensor reductions instead of one small histogram per tensor (probes call this every
// step, and LibTorch's per-op overhead dominates small tensors), with no host synchronisation.
class HistogramBatch {
 public:
  // sizes: element count of each tensor; group_of: the group of each tensor (empty = no
  // groups), groups numbered 0..G-1, each non-empty.
  HistogramBatch(BinSpec spec, std::vector<int64_t> sizes, std::vector<int64_t> group_of,
                 torch::Device device);
  // (T + G, bins + 6): one row per tensor, then one per group, on the device of `values`: the
  // CPU loop when every tensor is on the CPU, else the tensor path. Tensors whose sizes differ
  // from the constructor's are histogrammed too (a slower tensor path).
  torch::Tensor operator()(const std::vector<torch::Tensor>& values) const;
  // The tensor path on any device (bincount and reductions in float64, about ten passes over
  // all elements): what operator() does off the CPU; tests compare it with the CPU loop, which
  // gives the same counts and the same sums up to rounding (another summation order).
  torch::Tensor tensor_path(const std::vector<torch::Tensor>& values) const;
  const BinSpec& spec() const { return spec_; }

 private:
  torch::Tensor rows(const torch::Tensor& x, const torch::Tensor& offset,
                     const torch::Tensor& lengths, const std::vector<int64_t>& sizes) const;
  torch::Tensor cpu_rows(const std::vector<torch::Tensor>& values) const;

  BinSpec spec_;
  std::vector<int64_t> sizes_;
  std::vector<int64_t> group_of_;  // (T) or empty: the group of each tensor
  int64_t groups_ = 0;
  torch::Tensor offset_;         // (N) float64: tensor index * bins, per element
  torch::Tensor lengths_;        // (T) int64
  torch::Tensor group_order_;    // (T) int64: tensors ordered by group
  torch::Tensor group_lengths_;  // (G) int64
};

// One histogram per tensor of `values`: (T, bins + 6).
torch::Tensor histograms_packed(const std::vector<torch::Tensor>& values, const BinSpec& spec);
// One histogram of every element of `values`: (bins + 6).
torch::Tensor histogram_packed(const torch::Tensor& values, const BinSpec& spec);

// The packed histogram of the union of two packed histograms (same BinSpec); row-wise on
// (T, bins + 6) as well.
torch::Tensor merge_packed(const torch::Tensor& a, const torch::Tensor& b);
// The same, into `acc` (in place: three operations, for per-step accumulation).
void merge_packed_into(torch::Tensor& acc, const torch::Tensor& b);

// Host form of a packed histogram (`packed` points at bins + kPackedStats doubles).
store::Histogram unpack_histogram(const double* packed, const BinSpec& spec);

}  // namespace normlab::train
