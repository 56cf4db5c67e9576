// IDX files (the MNIST family's format), plain or gzip-compressed (detected by magic bytes).
#pragma once

#include <torch/torch.h>

#include <string>

namespace normlab::io {

// Returns a uint8 tensor whose shape is the header's dimensions. Refuses (Error naming the
// path) a bad magic number, a dtype other than unsigned byte, a size that disagrees with the
// header (truncated or trailing bytes), or a corrupt gzip stream.
torch::Tensor read_idx(const std::string& path);

}  // namespace normlab::io
