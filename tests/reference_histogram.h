// A histogram computed element by element on the host, the way store::Histogram defines it:
// the independent reference for the device-side histograms of train/histogram.h.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

#include "store/records.h"

namespace normlab::testing {

struct ReferenceHistogram {
  ReferenceHistogram(double lo, double hi, int64_t bins, bool log10)
      : lo_(lo), hi_(hi), log10_(log10), counts(static_cast<size_t>(bins), 0) {}

  void add(const torch::Tensor& values) {
    torch::Tensor v = values.detach().to(torch::kCPU, torch::kDouble).contiguous().reshape({-1});
    const double* p = v.data_ptr<double>();
    for (int64_t i = 0; i < v.numel(); ++i) {
      const double x = p[i];
      if (!std::isfinite(x)) {
        ++nonfinite;
        continue;
      }
      ++count;
      min = std::min(min, x);
      max = std::max(max, x);
      sum += x;
      sum_sq += x * x;
      const double t = log10_ ? std::log10(std::fabs(x)) : x;
      const auto bins = static_cast<int64_t>(counts.size());
      // torch.histc's arithmetic order: (t - lo) * bins / (hi - lo).
      auto b =
          static_cast<int64_t>(std::floor((t - lo_) * static_cast<double>(bins) / (hi_ - lo_)));
      if (!(t > lo_)) b = 0;  // includes log10(0) = -inf
      b = std::min(std::max<int64_t>(b, 0), bins - 1);
      ++counts[static_cast<size_t>(b)];
    }
  }

  void expect_equal(const store::Histogram& h, const std::string& what) const {
    EXPECT_EQ(h.counts, counts) << what;
    EXPECT_EQ(h.count, count) << what;
    EXPECT_EQ(h.nonfinite, nonfinite) << what;
    if (count > 0) {
      const double mean = sum / static_cast<double>(count);
      const double sd = std::sqrt(std::max(0.0, sum_sq / static_cast<double>(count) - mean * mean));
      EXPECT_DOUBLE_EQ(h.min, min) << what;
      EXPECT_DOUBLE_EQ(h.max, max) << what;
      EXPECT_NEAR(h.mean, mean, 1e-9 * std::max(1.0, std::fabs(mean))) << what;
      EXPECT_NEAR(h.std, sd, 1e-6 * std::max(1e-12, sd)) << what;
    }
  }

  double lo_, hi_;
  bool log10_;
  std::vector<int64_t> counts;
  int64_t count = 0, nonfinite = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double sum = 0, sum_sq = 0;
};

}  // namespace normlab::testing
