// A backbone as the Classifier sees it: its top-level modules (registered on the Classifier
// under torchvision's names), the trunk that runs them, whether its output needs global
// average pooling, and the width of the vector handed to the head. One builder per backbone
// file (small_cnn.cpp, mlp.cpp, mobilenet_v2.cpp, resnet.cpp); model.cpp keeps the
// name -> builder table.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/model.h"
#include "models/norm_slots.h"

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

// Runs a backbone's top-level modules: x (N, C, H, W) -> maps (N, C', H', W') or vectors.
// Norm layers it calls directly (not through a Sequential) are exposed as norm slots.
// A trunk is also a chain of stages (torchvision's top-level blocks: "features.3", "layer2")
// so that a frozen prefix can run once and be shared by several trainable tails;
// forward(x) == forward_stages(x, 0, stages().size()).
class Trunk : public NormSlotOwner {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  // Stages [begin, end) in order.
  virtual torch::Tensor forward_stages(const torch::Tensor& x, int64_t begin, int64_t end) = 0;
  // Per stage, the module paths whose parameters and buffers it owns.
  virtual std::vector<std::vector<std::string>> stages() const = 0;
  std::vector<torch::nn::AnyModule*> norm_slots() override { return {}; }
};

struct Backbone {
  // Set by backbones whose trunk is one Sequential; the Classifier registers it as "features"
  // and runs it as the trunk (small_cnn, mlp, mobilenet_v2).
  torch::nn::Sequential features{nullptr};
  // Otherwise: the top-level modules in torchvision's order and names, run by `trunk`.
  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> modules;
  std::shared_ptr<Trunk> trunk;
  bool pool = true;         // (N, C, H, W) -> (N, C) by global average pooling
  int64_t feature_dim = 0;  // C after pooling (or the vector width without it)
  // Name and kind of torchvision's own head for HeadOptions.kind "torchvision":
  // "classifier" (Dropout + Linear, mobilenet_v2) or "fc" (Linear, resnet); empty if none.
  std::string torchvision_head;
};

// Options are validated by the caller (ClassifierImpl) before a builder runs. Builders make
// every norm slot through `norms`, named by its module path.
Backbone build_small_cnn(const ModelOptions& options, NormFactory& norms);
Backbone build_mlp(const ModelOptions& options, NormFactory& norms);
Backbone build_mobilenet_v2(const ModelOptions& options, NormFactory& norms);
Backbone build_resnet18(const ModelOptions& options, NormFactory& norms);
Backbone build_resnet50(const ModelOptions& options, NormFactory& norms);
Backbone build_resnet18_cifar(const ModelOptions& options, NormFactory& norms);
Backbone build_resnet50_cifar(const ModelOptions& options, NormFactory& norms);

}  // namespace normlab::models
