// Single-image preprocessing for inference, as torchvision's classification presets do it:
// resize the shorter side, centre-crop, scale to [0, 1], normalise per channel.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace normlab::data {

struct PreprocessOptions {
  int64_t resize = 256;      // shorter side after resizing; 0 = keep the size
  int64_t crop = 224;        // centre crop (square); 0 = no crop
  bool antialias = true;     // torchvision's PIL-based Resize filters when downscaling
  std::vector<double> mean;  // per channel, [0, 1] pixel units; empty = none
  std::vector<double> stddev;
};

// image: (C, H, W) uint8 -> (C, crop, crop) float32. Throws Error for a crop larger than
// the resized image.
torch::Tensor preprocess_image(const torch::Tensor& image, const PreprocessOptions& options);

}  // namespace normlab::data
