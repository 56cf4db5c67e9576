// A backbone as the Classifier sees it: the `features` Sequential, whether its output needs
// global average pooling, and the width of the vector handed to the head. One builder per
// backbone file (small_cnn.cpp, mlp.cpp); model.cpp keeps the name -> builder table.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <utility>

#include "models/model.h"

namespace normlab::models {

// A Sequential that can itself sit inside a Sequential: AnyModule needs a non-templated
// forward (see the static_assert in torch/nn/modules/container/any.h). Children keep the
// names "0", "1", ... so paths read "features.3.1.weight" as in torchvision.
class BlockImpl : public torch::nn::SequentialImpl {
 public:
  using SequentialImpl::SequentialImpl;

  // x -> each child in order -> y
  torch::Tensor forward(torch::Tensor x) {
    return SequentialImpl::forward<torch::Tensor>(std::move(x));
  }

  // SequentialImpl::clone would return a plain Sequential, which AnyModule cannot cast back.
  std::shared_ptr<torch::nn::Module> clone(
      const torch::optional<torch::Device>& device = torch::nullopt) const override {
    auto copy = std::make_shared<BlockImpl>();
    for (const auto& child : *this) copy->push_back(child.clone(device));
    return copy;
  }
};
TORCH_MODULE(Block);

struct Backbone {
  torch::nn::Sequential features{nullptr};
  bool pool = true;         // (N, C, H, W) -> (N, C) by global average pooling
  int64_t feature_dim = 0;  // C after pooling (or the vector width without it)
};

// Options are validated by the caller (ClassifierImpl) before a builder runs.
Backbone build_small_cnn(const ModelOptions& options);
Backbone build_mlp(const ModelOptions& options);

}  // namespace normlab::models
