// Device-side histograms against a host reference, including NaN, Inf, zeros and values
// outside the range.
#include "train/histogram.h"

#include <gtest/gtest.h>

#include <limits>

#include "reference_histogram.h"

namespace normlab::train {
namespace {

store::Histogram host(const torch::Tensor& packed, const BinSpec& spec) {
  torch::Tensor c = packed.to(torch::kCPU, torch::kDouble).contiguous();
  return unpack_histogram(c.data_ptr<double>(), spec);
}

TEST(Histogram, LinearCountsOpenEndsAndNonFinite) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  torch::Tensor x =
      torch::tensor({-5.0, -1.0, -0.4, 0.0, 0.1, 0.99, 1.0, 3.0, nan, inf, -inf}, torch::kFloat);
  BinSpec spec{"linear", -1, 1, 4};
  store::Histogram h = host(histogram_packed(x, spec), spec);
  // bins [-1,-.5) [-.5,0) [0,.5) [.5,1]; -5 -> bin 0, 3 -> bin 3
  EXPECT_EQ(h.counts, (std::vector<int64_t>{2, 1, 2, 3}));
  EXPECT_EQ(h.count, 8);
  EXPECT_EQ(h.nonfinite, 3);
  EXPECT_DOUBLE_EQ(h.min, -5.0);
  EXPECT_DOUBLE_EQ(h.max, 3.0);
  normlab::testing::ReferenceHistogram r(-1, 1, 4, false);
  r.add(x);
  r.expect_equal(h, "linear");
  EXPECT_EQ(h.edges, (std::vector<double>{-1, -0.5, 0, 0.5, 1}));
}

TEST(Histogram, Log10MagnitudesAndMerging) {
  torch::manual_seed(0);
  torch::Tensor a = torch::randn({1000}) * 1e-3;
  torch::Tensor b = torch::randn({500}) * 10;
  b[0] = 0;  // log10(0) = -inf: bin 0
  BinSpec spec{"log10", -8, 2, 20};
  store::Histogram h =
      host(merge_packed(histogram_packed(a, spec), histogram_packed(b, spec)), spec);
  normlab::testing::ReferenceHistogram r(-8, 2, 20, true);
  r.add(a);
  r.add(b);
  r.expect_equal(h, "log10 merged");
  EXPECT_EQ(h.count, 1500);
}

TEST(Histogram, EmptyInputHasNoStatistics) {
  BinSpec spec{"linear", 0, 1, 3};
  store::Histogram h = host(histogram_packed(torch::zeros({0}), spec), spec);
  EXPECT_EQ(h.count, 0);
  EXPECT_EQ(h.counts, (std::vector<int64_t>{0, 0, 0}));
}

}  // namespace
}  // namespace normlab::train
