// Bilinear resizing as PIL (Pillow's Image.resize, BILINEAR) computes it on 8-bit images:
// two separable passes, horizontal then vertical, with Pillow's triangle-filter coefficients in
// 22-bit fixed point, each pass rounding to whole grey levels (0..255). This is what
// torchvision.transforms.Resize does to a PIL image, so what the seeds' PyTorch scripts fed
// their models. It matters: on CIFAR-10 upscaled to 224 px, the TFLite-converted MobileNetV2
// of ../shared/data changes its pooled features by 14% between these rounded images and a
// float resize (interpolate, align_corners = false) that differs from them by 0.26 grey levels
// on average (bench/README.md).
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace normlab::data {

// x: (B, C, H, W) float32 holding k / 255 for integer k in [0, 255] (a uint8 image after
// ToTensor) -> (B, C, out_h, out_w) float32, again k / 255, equal to PIL's result. Any device;
// exact integer arithmetic (int32, as Pillow).
torch::Tensor pil_bilinear_resize(const torch::Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace normlab::data
