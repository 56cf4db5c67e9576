#include "data/preprocess.h"

#include <cmath>

#include "core/error.h"

namespace normlab::data {

torch::Tensor preprocess_image(const torch::Tensor& image, const PreprocessOptions& options) {
  TORCH_CHECK(image.dim() == 3 && image.scalar_type() == torch::kByte,
              "preprocess_image expects (C, H, W) uint8, got ", image.sizes(), " ",
              image.scalar_type());
  torch::Tensor x = image.unsqueeze(0).to(torch::kFloat).div(255.0);  // (1, C, H, W)
  if (options.resize > 0) {
    int64_t h = x.size(2), w = x.size(3);
    // torchvision.transforms.Resize(int): the shorter side becomes `resize`, the longer one
    // keeps the aspect ratio (truncated, as torchvision does).
    int64_t nh = h <= w ? options.resize : static_cast<int64_t>(options.resize * h / w);
    int64_t nw = h <= w ? static_cast<int64_t>(options.resize * w / h) : options.resize;
    // F::interpolate(bilinear, align_corners = false)'s kernels, called directly: GCC 13 warns
    // (-Wmaybe-uninitialized) inside LibTorch's InterpolateFuncOptions.
    x = (options.antialias ? torch::_upsample_bilinear2d_aa(x, {nh, nw}, false)
                           : torch::upsample_bilinear2d(x, {nh, nw}, false))
            .clamp(0.0, 1.0);
  }
  if (options.crop > 0) {
    int64_t h = x.size(2), w = x.size(3);
    require(options.crop <= h && options.crop <= w, "crop " + std::to_string(options.crop),
            "larger than the resized image (" + std::to_string(h) + "x" + std::to_string(w) + ")");
    // Centre crop offsets rounded like torchvision.transforms.functional.center_crop.
    int64_t top = static_cast<int64_t>(std::round((h - options.crop) / 2.0));
    int64_t left = static_cast<int64_t>(std::round((w - options.crop) / 2.0));
    x = x.narrow(2, top, options.crop).narrow(3, left, options.crop);
  }
  if (!options.mean.empty()) {
    int64_t c = x.size(1);
    require(static_cast<int64_t>(options.mean.size()) == c &&
                static_cast<int64_t>(options.stddev.size()) == c,
            "normalisation", "needs " + std::to_string(c) + " mean/std values");
    auto mean = torch::tensor(options.mean, torch::kDouble).to(torch::kFloat).view({1, c, 1, 1});
    auto sd = torch::tensor(options.stddev, torch::kDouble).to(torch::kFloat).view({1, c, 1, 1});
    x = (x - mean) / sd;
  }
  return x.squeeze(0).contiguous();  // (C, crop, crop)
}

}  // namespace normlab::data
