// Device-side histograms against a host reference, including NaN, Inf, zeros and values
// outside the range.
#include "train/histogram.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

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

// Random values with NaN, +-Inf and zeros sprinkled in (zeros: log10 |0| = -inf).
torch::Tensor messy(std::vector<int64_t> shape, double scale, torch::Dtype dtype) {
  torch::Tensor x = torch::randn(shape, torch::kDouble) * scale;
  torch::Tensor u = torch::rand(shape, torch::kDouble);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  x.masked_fill_(u < 0.01, nan);
  x.masked_fill_((u >= 0.01) & (u < 0.02), inf);
  x.masked_fill_((u >= 0.02) & (u < 0.03), -inf);
  x.masked_fill_((u >= 0.03) & (u < 0.05), 0.0);
  return x.to(dtype);
}

// The CPU loop against the tensor path: counts, count and nonfinite exactly, min and max
// exactly, sum and sum_sq up to rounding (the summation orders differ).
void expect_same_rows(const torch::Tensor& fast, const torch::Tensor& ref,
                      const std::vector<int64_t>& numel_of_row, int64_t bins,
                      const std::string& what) {
  ASSERT_EQ(fast.sizes(), ref.sizes()) << what;
  ASSERT_EQ(fast.scalar_type(), torch::kDouble) << what;
  torch::Tensor a = fast.contiguous(), b = ref.to(torch::kCPU).contiguous();
  const int64_t width = bins + kPackedStats;
  for (int64_t r = 0; r < a.size(0); ++r) {
    const double* x = a.data_ptr<double>() + r * width;
    const double* y = b.data_ptr<double>() + r * width;
    const std::string row = what + ", row " + std::to_string(r);
    for (int64_t j = 0; j < bins + 2; ++j) EXPECT_EQ(x[j], y[j]) << row << ", column " << j;
    EXPECT_EQ(x[bins] + x[bins + 1], static_cast<double>(numel_of_row[static_cast<size_t>(r)]))
        << row;
    // |error of a sum| <= n eps sum |v| <= n eps sqrt(n sum_sq): relative 1e-12 of that bound.
    const double n = std::max(1.0, y[bins]);
    EXPECT_NEAR(x[bins + 2], y[bins + 2],
                1e-12 * (std::fabs(y[bins + 2]) + std::sqrt(n * y[bins + 3])))
        << row << ", sum";
    EXPECT_NEAR(x[bins + 3], y[bins + 3], 1e-12 * y[bins + 3]) << row << ", sum_sq";
    EXPECT_EQ(x[bins + 4], y[bins + 4]) << row << ", min";
    EXPECT_EQ(x[bins + 5], y[bins + 5]) << row << ", max";
  }
}

TEST(Histogram, CpuLoopMatchesTensorPath) {
  torch::manual_seed(7);
  // Several tensors in three groups, out of group order; float and double; empty tensors
  // (one alone in its group); one tensor of several CPU-loop chunks (2^15 elements each).
  std::vector<torch::Tensor> values = {
      messy({40, 30}, 0.5, torch::kFloat), messy({100}, 1e-3, torch::kDouble),
      messy({0}, 1, torch::kFloat),        messy({3, 3, 5, 5}, 2, torch::kFloat),
      messy({100003}, 0.1, torch::kFloat), messy({0}, 1, torch::kDouble),
      messy({1}, 1, torch::kDouble),       messy({257}, 30, torch::kDouble),
  };
  const std::vector<int64_t> group_of = {1, 0, 1, 2, 0, 3, 2, 1};
  std::vector<int64_t> sizes, numel_of_row(4, 0);
  for (size_t i = 0; i < values.size(); ++i) {
    sizes.push_back(values[i].numel());
    numel_of_row[static_cast<size_t>(group_of[i])] += values[i].numel();
  }
  numel_of_row.insert(numel_of_row.begin(), sizes.begin(), sizes.end());
  for (const BinSpec& spec : {BinSpec{"linear", -1, 1, 40}, BinSpec{"log10", -8, 2, 64},
                              BinSpec{"linear", -0.3, 0.7, 1}}) {
    const std::string what = spec.scale + " " + std::to_string(spec.bins) + " bins";
    HistogramBatch grouped(spec, sizes, group_of, torch::kCPU);
    torch::Tensor fast = grouped(values);
    expect_same_rows(fast, grouped.tensor_path(values), numel_of_row, spec.bins, what);
    // Group 3 holds only an empty tensor: an empty histogram.
    EXPECT_EQ(fast[static_cast<int64_t>(values.size()) + 3][spec.bins + 4].item<double>(),
              std::numeric_limits<double>::infinity());
    HistogramBatch plain(spec, sizes, {}, torch::kCPU);
    const std::vector<int64_t> per_tensor(numel_of_row.begin(),
                                          numel_of_row.begin() + static_cast<long>(sizes.size()));
    expect_same_rows(plain(values), plain.tensor_path(values), per_tensor, spec.bins,
                     what + ", no groups");
    // Against the element-by-element reference as well, for the big tensor and a group.
    normlab::testing::ReferenceHistogram big(spec.lo, spec.hi, spec.bins, spec.scale == "log10");
    big.add(values[4]);
    big.expect_equal(unpack_histogram(fast[4].contiguous().data_ptr<double>(), spec), what);
    normlab::testing::ReferenceHistogram g1(spec.lo, spec.hi, spec.bins, spec.scale == "log10");
    for (size_t i : {0, 2, 7}) g1.add(values[i]);
    torch::Tensor row = fast[static_cast<int64_t>(values.size()) + 1].contiguous();
    g1.expect_equal(unpack_histogram(row.data_ptr<double>(), spec), what + ", group 1");
  }
}

TEST(Histogram, CpuLoopIsIndependentOfThreadCount) {
  torch::manual_seed(8);
  std::vector<torch::Tensor> values = {messy({200000}, 0.2, torch::kFloat),
                                       messy({70000}, 3, torch::kDouble)};
  BinSpec spec{"log10", -6, 2, 32};
  HistogramBatch batch(spec, {200000, 70000}, {0, 0}, torch::kCPU);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  torch::Tensor one = batch(values);
  at::set_num_threads(std::max(2, threads));
  torch::Tensor many = batch(values);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one, many));  // bit for bit, sums included
}

}  // namespace
}  // namespace normlab::train
