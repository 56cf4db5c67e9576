// small_cnn: `depth` blocks of Conv3x3 (no bias) -> Norm -> ReLU, for 28x28 (MNIST-like) or
// 32x32 inputs. Block i has width * 2^(i/2) channels (the width doubles every other block:
// w, w, 2w, 2w, 4w, ...) and stride 2 on blocks 1 and 2 (28 -> 14 -> 7), stride 1 elsewhere.
// The conv has no bias because every norm but "none" is followed by its own shift.
#include "models/backbone.h"

#include <string>

namespace normlab::models {
namespace {

int64_t block_channels(int64_t width, int64_t i) { return width << (i / 2); }
int64_t block_stride(int64_t i) { return (i == 1 || i == 2) ? 2 : 1; }

}  // namespace

Backbone build_small_cnn(const ModelOptions& options, NormFactory& norms) {
  Backbone out;
  out.features = torch::nn::Sequential();
  int64_t in = options.in_channels;
  for (int64_t i = 0; i < options.depth; ++i) {
    const int64_t c = block_channels(options.width, i);
    Block block(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, c, 3)
                                      .stride(block_stride(i))
                                      .padding(1)
                                      .bias(false)),  // features.i.0
                norms.make("features." + std::to_string(i) + ".1", options.norm, c,
                           nn::NormInput::kMap),  // .1
                torch::nn::ReLU());               // .2
    out.features->push_back(block);
    in = c;
  }
  out.pool = true;  // (N, C, H', W') -> (N, C)
  out.feature_dim = in;
  return out;
}

}  // namespace normlab::models
