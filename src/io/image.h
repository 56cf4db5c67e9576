// Image files (PNG, JPEG, BMP, GIF, ... as stb_image reads them) as uint8 RGB tensors.
#pragma once

#include <torch/torch.h>

#include <string>

namespace normlab::io {

// Returns (3, H, W) uint8 RGB. Grayscale is replicated into three channels; an alpha channel
// is dropped (not composited: torchvision's PIL .convert("RGB") drops it the same way). An
// unreadable or corrupt file is an Error naming the file and stb_image's reason.
torch::Tensor read_image(const std::string& path);

}  // namespace normlab::io
