// Global average pooling, (N, C, H, W) -> (N, C), with a backward that does not materialise its
// gradient: it returns grad / (H * W) broadcast over (H, W) as a stride-0 view.
//
// The forward is x.mean({2, 3}) and every gradient value is the one mean's backward computes,
// bit for bit (one division per element of the (N, C) gradient instead of per element of the
// map). What changes is the layout the layer below sees: mean's backward writes a contiguous
// NCHW tensor (one pass over N*C*H*W elements), and a channels-last network then runs the
// activation's and BatchNorm's backward on mixed layouts, off their channels-last kernels. For
// MobileNetV2's features.18 at batch 64 on this project's 2-core CPU, BatchNorm2d's backward
// took 20 ms on such a mixed input against 3.6 ms with the broadcast gradient (bench/README.md,
// "The tails").
#pragma once

#include <torch/torch.h>

namespace normlab::nn {

// x: (N, C, H, W) -> (N, C)
torch::Tensor global_avg_pool(const torch::Tensor& x);

}  // namespace normlab::nn
