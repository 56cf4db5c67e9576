#include "train/histogram.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace normlab::train {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

torch::Tensor lengths_tensor(const std::vector<int64_t>& sizes, torch::Device device) {
  return torch::tensor(sizes, torch::kLong).to(device);
}

// Per element: tensor index * bins, so that bin + offset is a unique slot per tensor.
torch::Tensor element_offsets(const std::vector<int64_t>& sizes, int64_t bins,
                              torch::Device device) {
  const auto rows = static_cast<int64_t>(sizes.size());
  torch::Tensor idx = torch::arange(rows, torch::TensorOptions(device).dtype(torch::kDouble));
  return torch::repeat_interleave(idx * static_cast<double>(bins), lengths_tensor(sizes, device));
}

// The CPU loop splits each tensor into chunks of this many elements, fixed so that the
// partial sums, and their merge order, do not depend on the number of threads.
constexpr int64_t kChunk = int64_t{1} << 15;

// Statistics of the finite values of one chunk (its bin counts are kept separately).
struct Partial {
  int64_t finite = 0;
  double sum = 0, sum_sq = 0, lo = kInf, hi = -kInf;
};

// One pass over p[0, n): the bins as the tensor path computes them, (t - lo) * (bins / (hi -
// lo)), floored and clamped into [0, bins - 1] (log10 |0| = -inf lands in bin 0); non-finite
// values are only counted (by the caller, from the finite count).
template <bool kLog10, typename T>
void bin_chunk(const T* p, int64_t n, double lo, double scale, int64_t bins, int64_t* counts,
               Partial& out) {
  const auto last = static_cast<double>(bins - 1);
  Partial r;
  for (int64_t i = 0; i < n; ++i) {
    const auto x = static_cast<double>(p[i]);
    if (!std::isfinite(x)) continue;
    ++r.finite;
    r.sum += x;
    r.sum_sq += x * x;
    r.lo = std::min(r.lo, x);
    r.hi = std::max(r.hi, x);
    const double t = kLog10 ? std::log10(std::fabs(x)) : x;
    const double b = std::floor((t - lo) * scale);
    // Written so that -inf (and NaN, from a degenerate spec) go to bin 0 without a cast of a
    // non-finite double.
    ++counts[b > 0 ? (b < last ? static_cast<int64_t>(b) : bins - 1) : 0];
  }
  out = r;
}

}  // namespace

std::vector<double> BinSpec::edges() const {
  std::vector<double> out(static_cast<size_t>(bins + 1));
  for (int64_t i = 0; i <= bins; ++i) {
    out[static_cast<size_t>(i)] =
        lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(bins);
  }
  return out;
}

HistogramBatch::HistogramBatch(BinSpec spec, std::vector<int64_t> sizes,
                               std::vector<int64_t> group_of, torch::Device device)
    : spec_(std::move(spec)), sizes_(std::move(sizes)) {
  TORCH_CHECK(!sizes_.empty(), "HistogramBatch: no tensors");
  offset_ = element_offsets(sizes_, spec_.bins, device);
  lengths_ = lengths_tensor(sizes_, device);
  if (group_of.empty()) return;
  TORCH_CHECK(group_of.size() == sizes_.size(), "HistogramBatch: ", group_of.size(),
              " group ids for ", sizes_.size(), " tensors");
  TORCH_CHECK(*std::min_element(group_of.begin(), group_of.end()) >= 0,
              "HistogramBatch: negative group id");
  groups_ = *std::max_element(group_of.begin(), group_of.end()) + 1;
  std::vector<int64_t> order(group_of.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return group_of[a] < group_of[b]; });
  std::vector<int64_t> lengths(static_cast<size_t>(groups_), 0);
  for (int64_t g : group_of) ++lengths[static_cast<size_t>(g)];
  for (int64_t n : lengths) TORCH_CHECK(n > 0, "HistogramBatch: a group has no tensor");
  group_order_ = torch::tensor(order, torch::kLong).to(device);
  group_of_ = group_of;
  group_lengths_ = lengths_tensor(lengths, device);
}

torch::Tensor HistogramBatch::rows(const torch::Tensor& x, const torch::Tensor& offset,
                                   const torch::Tensor& lengths,
                                   const std::vector<int64_t>& sizes) const {
  // x: (N) float64, the tensors' elements back to back; offset (N); lengths (T) on x's device
  const auto count = static_cast<int64_t>(sizes.size());
  const auto opts = x.options();
  const int64_t bins = spec_.bins;
  if (x.numel() == 0) {  // segment_reduce refuses empty data: every row is empty
    torch::Tensor out = torch::zeros({count, bins + kPackedStats}, opts);
    out.select(1, bins + 4).fill_(kInf);
    out.select(1, bins + 5).fill_(-kInf);
    return out;
  }
  torch::Tensor finite = torch::isfinite(x);
  // The bin as torch.histc computes it, (t - lo) * bins / (hi - lo), clamped into the end
  // bins (the first and last bins are open-ended; log10 |0| = -inf lands in bin 0).
  torch::Tensor t = spec_.scale == "log10" ? x.abs().log10() : x;
  torch::Tensor bin = ((t - spec_.lo) * (static_cast<double>(bins) / (spec_.hi - spec_.lo)))
                          .floor_()
                          .clamp_(0, static_cast<double>(bins - 1));
  // Non-finite values go to one extra slot past the last tensor's bins, dropped below.
  torch::Tensor slot =
      torch::where(finite, bin + offset, torch::full({}, static_cast<double>(count * bins), opts))
          .to(torch::kLong);
  torch::Tensor counts =
      torch::bincount(slot, {}, count * bins + 1).narrow(0, 0, count * bins).view({count, bins});
  // Per-tensor sums and extremes over views of x: a few small reductions per tensor were
  // faster here than segment_reduce (not vectorised in LibTorch 1.13) over all elements.
  torch::Tensor xf = torch::where(finite, x, torch::zeros({}, opts));
  torch::Tensor for_min = torch::where(finite, x, torch::full({}, kInf, opts));
  torch::Tensor for_max = torch::where(finite, x, torch::full({}, -kInf, opts));
  std::vector<torch::Tensor> sum, sum_sq, lo, hi;
  int64_t start = 0;
  for (const int64_t n : sizes) {
    if (n == 0) {
      sum.push_back(torch::zeros({}, opts));
      sum_sq.push_back(torch::zeros({}, opts));
      lo.push_back(torch::full({}, kInf, opts));
      hi.push_back(torch::full({}, -kInf, opts));
      continue;
    }
    torch::Tensor v = xf.narrow(0, start, n);
    sum.push_back(v.sum());
    sum_sq.push_back(v.dot(v));
    lo.push_back(for_min.narrow(0, start, n).min());
    hi.push_back(for_max.narrow(0, start, n).max());
    start += n;
  }
  torch::Tensor stats =
      torch::stack({torch::stack(sum), torch::stack(sum_sq), torch::stack(lo), torch::stack(hi)},
                   1);  // (count, 4)
  torch::Tensor n = counts.sum(1, true).to(torch::kDouble);
  return torch::cat({counts.to(torch::kDouble), n, lengths.to(opts).view({count, 1}) - n, stats},
                    1);
}

torch::Tensor HistogramBatch::cpu_rows(const std::vector<torch::Tensor>& values) const {
  const auto count = static_cast<int64_t>(values.size());
  const int64_t bins = spec_.bins;
  const int64_t width = bins + kPackedStats;
  // Each tensor's elements, contiguous, as float or double; chunks of kChunk elements.
  struct Chunk {
    int64_t tensor, begin, end;
  };
  std::vector<torch::Tensor> data;
  std::vector<Chunk> chunks;
  int64_t total = 0;
  for (int64_t i = 0; i < count; ++i) {
    torch::Tensor v = values[static_cast<size_t>(i)].detach();
    if (v.scalar_type() != torch::kFloat && v.scalar_type() != torch::kDouble) {
      v = v.to(torch::kDouble);
    }
    data.push_back(v.contiguous());
    const int64_t n = v.numel();
    for (int64_t b = 0; b < n; b += kChunk) chunks.push_back({i, b, std::min(n, b + kChunk)});
    total += n;
  }
  const auto nchunks = static_cast<int64_t>(chunks.size());
  std::vector<Partial> partial(static_cast<size_t>(nchunks));
  std::vector<int64_t> chunk_counts(static_cast<size_t>(nchunks * bins), 0);
  const bool log10 = spec_.scale == "log10";
  const double lo = spec_.lo, scale = static_cast<double>(bins) / (spec_.hi - spec_.lo);
  auto run = [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      const Chunk& k = chunks[static_cast<size_t>(c)];
      const torch::Tensor& v = data[static_cast<size_t>(k.tensor)];
      int64_t* counts = chunk_counts.data() + c * bins;
      Partial& out = partial[static_cast<size_t>(c)];
      const int64_t n = k.end - k.begin;
      if (v.scalar_type() == torch::kFloat) {
        const float* p = v.data_ptr<float>() + k.begin;
        log10 ? bin_chunk<true>(p, n, lo, scale, bins, counts, out)
              : bin_chunk<false>(p, n, lo, scale, bins, counts, out);
      } else {
        const double* p = v.data_ptr<double>() + k.begin;
        log10 ? bin_chunk<true>(p, n, lo, scale, bins, counts, out)
              : bin_chunk<false>(p, n, lo, scale, bins, counts, out);
      }
    }
  };
  // Chunks are independent, so any split over threads gives the same partials.
  if (nchunks > 1 && total >= 2 * kChunk) {
    at::parallel_for(0, nchunks, 1, run);
  } else {
    run(0, nchunks);
  }
  // Merge each tensor's chunks in order, then each group's tensors in index order.
  torch::Tensor out = torch::zeros({count + groups_, width}, torch::kDouble);
  double* o = out.data_ptr<double>();
  for (int64_t r = 0; r < count + groups_; ++r) {
    o[r * width + bins + 4] = kInf;
    o[r * width + bins + 5] = -kInf;
  }
  for (int64_t c = 0; c < nchunks; ++c) {
    const Partial& p = partial[static_cast<size_t>(c)];
    double* row = o + chunks[static_cast<size_t>(c)].tensor * width;
    const int64_t* counts = chunk_counts.data() + c * bins;
    for (int64_t b = 0; b < bins; ++b) row[b] += static_cast<double>(counts[b]);
    row[bins] += static_cast<double>(p.finite);
    row[bins + 2] += p.sum;
    row[bins + 3] += p.sum_sq;
    row[bins + 4] = std::min(row[bins + 4], p.lo);
    row[bins + 5] = std::max(row[bins + 5], p.hi);
  }
  for (int64_t i = 0; i < count; ++i) {
    double* row = o + i * width;
    row[bins + 1] = static_cast<double>(data[static_cast<size_t>(i)].numel()) - row[bins];
    if (groups_ == 0) continue;
    double* g = o + (count + group_of_[static_cast<size_t>(i)]) * width;
    for (int64_t j = 0; j < bins + 4; ++j) g[j] += row[j];
    g[bins + 4] = std::min(g[bins + 4], row[bins + 4]);
    g[bins + 5] = std::max(g[bins + 5], row[bins + 5]);
  }
  return out;
}

torch::Tensor HistogramBatch::operator()(const std::vector<torch::Tensor>& values) const {
  TORCH_CHECK(values.size() == sizes_.size(), "HistogramBatch: ", values.size(), " tensors for ",
              sizes_.size());
  const bool cpu = std::all_of(values.begin(), values.end(),
                               [](const torch::Tensor& v) { return v.device().is_cpu(); });
  return cpu ? cpu_rows(values) : tensor_path(values);
}

torch::Tensor HistogramBatch::tensor_path(const std::vector<torch::Tensor>& values) const {
  TORCH_CHECK(values.size() == sizes_.size(), "HistogramBatch: ", values.size(), " tensors for ",
              sizes_.size());
  std::vector<torch::Tensor> flat;
  std::vector<int64_t> sizes;
  for (const auto& v : values) {
    flat.push_back(v.detach().reshape({-1}));
    sizes.push_back(v.numel());
  }
  torch::Tensor x = torch::cat(flat).to(torch::kDouble);  // (N)
  torch::Tensor out = sizes == sizes_ ? rows(x, offset_, lengths_, sizes)
                                      : rows(x, element_offsets(sizes, spec_.bins, x.device()),
                                             lengths_tensor(sizes, x.device()), sizes);
  if (groups_ == 0) return out;
  // A group's histogram merges its tensors' rows: sums for the additive columns, min / max.
  const int64_t add = spec_.bins + 4;
  torch::Tensor ordered = out.index_select(0, group_order_);
  torch::Tensor g_add = torch::segment_reduce(ordered.narrow(1, 0, add), "sum", group_lengths_, {},
                                              {}, 0, false, 0.0);
  torch::Tensor g_lo =
      torch::segment_reduce(ordered.select(1, add), "min", group_lengths_, {}, {}, 0, false, kInf);
  torch::Tensor g_hi = torch::segment_reduce(ordered.select(1, add + 1), "max", group_lengths_, {},
                                             {}, 0, false, -kInf);
  torch::Tensor groups = torch::cat({g_add, g_lo.view({groups_, 1}), g_hi.view({groups_, 1})}, 1);
  return torch::cat({out, groups});
}

torch::Tensor histograms_packed(const std::vector<torch::Tensor>& values, const BinSpec& spec) {
  std::vector<int64_t> sizes;
  for (const auto& v : values) sizes.push_back(v.numel());
  TORCH_CHECK(!values.empty(), "histograms_packed: no tensors");
  return HistogramBatch(spec, sizes, {}, values.front().device())(values);
}

torch::Tensor histogram_packed(const torch::Tensor& values, const BinSpec& spec) {
  return histograms_packed({values}, spec)[0];
}

torch::Tensor merge_packed(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(a.sizes() == b.sizes(), "merge_packed: ", a.sizes(), " vs ", b.sizes());
  torch::Tensor out = a.clone();
  merge_packed_into(out, b);
  return out;
}

void merge_packed_into(torch::Tensor& acc, const torch::Tensor& b) {
  TORCH_CHECK(acc.sizes() == b.sizes(), "merge_packed: ", acc.sizes(), " vs ", b.sizes());
  const int64_t add = acc.size(-1) - 2;  // counts, count, nonfinite, sum, sum_sq
  acc.narrow(-1, 0, add).add_(b.narrow(-1, 0, add));
  torch::Tensor lo = acc.narrow(-1, add, 1), hi = acc.narrow(-1, add + 1, 1);
  lo.copy_(torch::minimum(lo, b.narrow(-1, add, 1)));
  hi.copy_(torch::maximum(hi, b.narrow(-1, add + 1, 1)));
}

store::Histogram unpack_histogram(const double* packed, const BinSpec& spec) {
  store::Histogram h;
  h.scale = spec.scale;
  h.edges = spec.edges();
  h.counts.resize(static_cast<size_t>(spec.bins));
  for (int64_t i = 0; i < spec.bins; ++i) {
    h.counts[static_cast<size_t>(i)] = std::llround(packed[i]);
  }
  const double* s = packed + spec.bins;
  h.count = std::llround(s[0]);
  h.nonfinite = std::llround(s[1]);
  if (h.count > 0) {
    const auto n = static_cast<double>(h.count);
    h.mean = s[2] / n;
    h.std = std::sqrt(std::max(0.0, s[3] / n - h.mean * h.mean));
    h.min = s[4];
    h.max = s[5];
  }
  return h;
}

}  // namespace normlab::train
