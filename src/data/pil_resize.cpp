#include "data/pil_resize.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace normlab::data {
namespace {

// Pillow's src/libImaging/Resample.c: PRECISION_BITS = 32 - 8 - 2.
constexpr int kPrecisionBits = 22;

// Taps of one axis: for each output pixel, kSize input indices and fixed-point weights
// (precompute_coeffs and normalize_coeffs_8bpc of Resample.c, bilinear filter, whole image).
struct Taps {
  torch::Tensor index;   // (out * k) int64, unused taps point at a valid pixel with weight 0
  torch::Tensor weight;  // (out, k) int32
  int64_t k = 0;
};

Taps bilinear_taps(int64_t in_size, int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;  // the triangle filter's support is 1
  const auto k = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  std::vector<int64_t> index(static_cast<size_t>(out_size * k));
  std::vector<int32_t> weight(static_cast<size_t>(out_size * k), 0);
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (static_cast<double>(xx) + 0.5) * scale;
    // C's (int) truncates toward zero; both bounds are clamped to the image.
    const auto xmin = std::max<int64_t>(0, static_cast<int64_t>(center - support + 0.5));
    const int64_t xmax =
        std::min<int64_t>(in_size, static_cast<int64_t>(center + support + 0.5)) - xmin;
    std::vector<double> w(static_cast<size_t>(k), 0.0);
    double total = 0;
    for (int64_t x = 0; x < xmax; ++x) {
      const double t = std::fabs((static_cast<double>(x + xmin) - center + 0.5) / filterscale);
      w[static_cast<size_t>(x)] = t < 1.0 ? 1.0 - t : 0.0;
      total += w[static_cast<size_t>(x)];
    }
    for (int64_t x = 0; x < k; ++x) {
      const size_t i = static_cast<size_t>(xx * k + x);
      index[i] = std::min(xmin + x, in_size - 1);
      if (x >= xmax) continue;
      const double v = total != 0.0 ? w[static_cast<size_t>(x)] / total : 0.0;
      const double fixed = v * static_cast<double>(1 << kPrecisionBits);
      weight[i] = static_cast<int32_t>(v < 0 ? -0.5 + fixed : 0.5 + fixed);
    }
  }
  Taps t;
  t.index = torch::tensor(index, torch::kLong);
  t.weight = torch::tensor(weight, torch::kInt).view({out_size, k});
  t.k = k;
  return t;
}

// One pass along `dim` (2 or 3) of an int32 (B, C, H, W) image of grey levels.
torch::Tensor pass(const torch::Tensor& v, int64_t dim, int64_t out_size) {
  const Taps taps = bilinear_taps(v.size(dim), out_size);
  torch::Tensor index = taps.index.to(v.device()), weight = taps.weight.to(v.device());
  // Start at half a unit: the fixed-point rounding of ImagingResample{Horizontal,Vertical}.
  torch::Tensor acc;
  for (int64_t t = 0; t < taps.k; ++t) {
    torch::Tensor idx = index.view({out_size, taps.k}).select(1, t).contiguous();
    torch::Tensor w = weight.select(1, t);  // (out)
    std::vector<int64_t> shape(4, 1);
    shape[static_cast<size_t>(dim)] = out_size;
    torch::Tensor term = v.index_select(dim, idx) * w.view(shape);
    acc = acc.defined() ? acc.add_(term) : term;
  }
  acc.add_(1 << (kPrecisionBits - 1));
  // clip8: at most 255, at least 0; a shift floors a non-negative sum.
  return acc.clamp_min_(0).bitwise_right_shift(kPrecisionBits).clamp_max_(255);
}

}  // namespace

torch::Tensor pil_bilinear_resize(const torch::Tensor& x, int64_t out_h, int64_t out_w) {
  TORCH_CHECK(x.dim() == 4, "pil_bilinear_resize: expected (B, C, H, W), got ", x.sizes());
  torch::Tensor v = x.mul(255.0).round_().to(torch::kInt);
  // Pillow skips a pass whose size does not change.
  if (out_w != v.size(3)) v = pass(v, 3, out_w);
  if (out_h != v.size(2)) v = pass(v, 2, out_h);
  return v.to(torch::kFloat).div_(255.0);
}

}  // namespace normlab::data
