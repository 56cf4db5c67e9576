#include "train/histogram.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace normlab::train {

std::vector<double> BinSpec::edges() const {
  std::vector<double> out(static_cast<size_t>(bins + 1));
  for (int64_t i = 0; i <= bins; ++i) {
    out[static_cast<size_t>(i)] =
        lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(bins);
  }
  return out;
}

torch::Tensor histogram_packed(const torch::Tensor& values, const BinSpec& spec) {
  // x: (N) float64 on the values' device
  torch::Tensor x = values.detach().reshape({-1}).to(torch::kDouble);
  const double inf = std::numeric_limits<double>::infinity();
  if (x.numel() == 0) {
    torch::Tensor out = torch::zeros({spec.bins + kPackedStats}, x.options());
    out[spec.bins + 2] = inf;
    out[spec.bins + 3] = -inf;
    return out;
  }
  torch::Tensor finite = torch::isfinite(x);
  torch::Tensor count = finite.sum().to(torch::kDouble).reshape({1});
  torch::Tensor nonfinite = x.numel() - count;
  torch::Tensor zero = torch::zeros({}, x.options());
  torch::Tensor xf = torch::where(finite, x, zero);  // non-finite values contribute nothing
  torch::Tensor lo = torch::where(finite, x, torch::full({}, inf, x.options())).min().reshape({1});
  torch::Tensor hi = torch::where(finite, x, torch::full({}, -inf, x.options())).max().reshape({1});
  torch::Tensor sum = xf.sum().reshape({1});
  torch::Tensor sum_sq = (xf * xf).sum().reshape({1});

  // The binned quantity, clamped into [lo, hi] so that the end bins are open-ended (log10 of
  // an exact zero is -inf, clamped into bin 0). histc ignores values outside [lo, hi] (but
  // not NaN, which 1.13 puts in bin 0), so non-finite values are moved below lo.
  torch::Tensor t = spec.scale == "log10" ? x.abs().log10() : x;
  t = t.clamp(spec.lo, spec.hi);
  t = torch::where(finite, t, torch::full({}, spec.lo - (spec.hi - spec.lo), x.options()));
  torch::Tensor counts = torch::histc(t, spec.bins, spec.lo, spec.hi);
  return torch::cat({counts.to(torch::kDouble), count, nonfinite, lo, hi, sum, sum_sq});
}

torch::Tensor merge_packed(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(a.sizes() == b.sizes(), "merge_packed: ", a.sizes(), " vs ", b.sizes());
  const int64_t n = a.size(0) - kPackedStats;
  torch::Tensor out = a + b;  // counts, count, nonfinite, sum, sum_sq add
  out.narrow(0, n + 2, 1).copy_(torch::minimum(a.narrow(0, n + 2, 1), b.narrow(0, n + 2, 1)));
  out.narrow(0, n + 3, 1).copy_(torch::maximum(a.narrow(0, n + 3, 1), b.narrow(0, n + 3, 1)));
  return out;
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
    h.min = s[2];
    h.max = s[3];
    h.mean = s[4] / n;
    h.std = std::sqrt(std::max(0.0, s[5] / n - h.mean * h.mean));
  }
  return h;
}

}  // namespace normlab::train
