// mlp: Flatten, then `depth` blocks of Linear(., width) -> Norm -> ReLU (STUDIES.md S4 uses
// 20 blocks of width 128 with BN). No pooling; the embedding is the last block's output.
#include "models/backbone.h"

#include <string>

namespace normlab::models {

Backbone build_mlp(const ModelOptions& options, NormFactory& norms) {
  Backbone out;
  out.features = torch::nn::Sequential();
  out.features->push_back(torch::nn::Flatten());  // features.0: (N, C, H, W) -> (N, C*H*W)
  int64_t in = options.in_channels * options.input_hw * options.input_hw;
  for (int64_t i = 0; i < options.depth; ++i) {
    Block block(torch::nn::Linear(in, options.width),  // features.(i+1).0
                norms.make("features." + std::to_string(i + 1) + ".1", options.norm, options.width,
                           nn::NormInput::kVector),  // .1
                torch::nn::ReLU());                  // .2
    out.features->push_back(block);
    in = options.width;
  }
  out.pool = false;
  out.feature_dim = in;  // (N, width)
  return out;
}

}  // namespace normlab::models
