#include "models/model.h"

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "models/backbone.h"
#include "models/head.h"

namespace normlab::models {
namespace {

using BackboneBuilder = std::function<Backbone(const ModelOptions&)>;

// The backbone registry: filled here, by name, in listing order.
const std::vector<std::pair<std::string, BackboneBuilder>>& backbone_table() {
  static const std::vector<std::pair<std::string, BackboneBuilder>> table = {
      {"small_cnn", build_small_cnn},
      {"mlp", build_mlp},
  };
  return table;
}

std::string joined_backbone_names() {
  std::string out;
  for (const auto& name : backbone_names()) out += (out.empty() ? "" : ", ") + name;
  return out;
}

void require_positive(int64_t value, const std::string& key) {
  require(value > 0, key, "must be positive, got " + std::to_string(value));
}

Backbone build_backbone(const ModelOptions& options) {
  require_positive(options.in_channels, "in_channels");
  require_positive(options.input_hw, "input_hw");
  require_positive(options.num_classes, "num_classes");
  require_positive(options.width, "width");
  require_positive(options.depth, "depth");
  for (const auto& [name, build] : backbone_table()) {
    if (name == options.backbone) return build(options);
  }
  throw Error("backbone '" + options.backbone + "'", "unknown backbone",
              "valid backbones: " + joined_backbone_names());
}

}  // namespace

ClassifierImpl::ClassifierImpl(const ModelOptions& options) : options_(options) {
  Backbone backbone = build_backbone(options_);
  features = register_module("features", backbone.features);
  pool_ = backbone.pool;
  feature_dim_ = backbone.feature_dim;
  head = register_module(
      "head", build_head(options_.head, feature_dim_, options_.num_classes, options_.norm_options));
}

torch::Tensor ClassifierImpl::embed(torch::Tensor x) {
  // x: (N, C, H, W)
  TORCH_CHECK(x.dim() == 4, "Classifier expects (N, C, H, W) input, got ", x.sizes());
  x = features->forward(x);       // small_cnn: (N, C', H', W'); mlp: (N, width)
  if (pool_) x = x.mean({2, 3});  // global average pooling: (N, C')
  return x;                       // (N, feature_dim)
}

torch::Tensor ClassifierImpl::forward(torch::Tensor x) {
  // x: (N, C, H, W) -> logits (N, num_classes)
  return head->forward(embed(std::move(x)));
}

Classifier build_model(const ModelOptions& options) { return Classifier(options); }

std::vector<std::string> backbone_names() {
  std::vector<std::string> names;
  for (const auto& entry : backbone_table()) names.push_back(entry.first);
  return names;
}

}  // namespace normlab::models
