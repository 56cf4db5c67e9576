#include "models/model.h"

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "models/backbone.h"
#include "models/head.h"

namespace normlab::models {
namespace {

using BackboneBuilder = std::function<Backbone(const ModelOptions&, NormFactory&)>;

// The backbone registry: filled here, by name, in listing order.
const std::vector<std::pair<std::string, BackboneBuilder>>& backbone_table() {
  static const std::vector<std::pair<std::string, BackboneBuilder>> table = {
      {"small_cnn", build_small_cnn},
      {"mlp", build_mlp},
      {"mobilenet_v2", build_mobilenet_v2},
      {"resnet18", build_resnet18},
      {"resnet50", build_resnet50},
      {"resnet18_cifar", build_resnet18_cifar},
      {"resnet50_cifar", build_resnet50_cifar},
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

Backbone build_backbone(const ModelOptions& options, NormFactory& norms) {
  require_positive(options.in_channels, "in_channels");
  require_positive(options.input_hw, "input_hw");
  require_positive(options.num_classes, "num_classes");
  require_positive(options.width, "width");
  require_positive(options.depth, "depth");
  require(options.width_mult > 0.0, "width_mult",
          "must be positive, got " + std::to_string(options.width_mult));
  require(options.dropout >= 0.0 && options.dropout < 1.0, "dropout",
          "must be in [0, 1), got " + std::to_string(options.dropout));
  for (const auto& [name, build] : backbone_table()) {
    if (name == options.backbone) return build(options, norms);
  }
  throw Error("backbone '" + options.backbone + "'", "unknown backbone",
              "valid backbones: " + joined_backbone_names());
}

// A trunk that is one Sequential (registered as "features").
class SequentialTrunk : public Trunk {
 public:
  explicit SequentialTrunk(torch::nn::Sequential features) : features_(std::move(features)) {}
  torch::Tensor forward(const torch::Tensor& x) override { return features_->forward(x); }

 private:
  torch::nn::Sequential features_;
};

}  // namespace

ClassifierImpl::ClassifierImpl(const ModelOptions& options) : options_(options) {
  NormFactory norms(options_.norm_overrides, options_.norm_options);
  Backbone backbone = build_backbone(options_, norms);
  if (backbone.features) {
    features = register_module("features", backbone.features);
    trunk_ = std::make_shared<SequentialTrunk>(features);
  } else {
    for (auto& [name, module] : backbone.modules) register_module(name, module);
    trunk_ = backbone.trunk;
  }
  pool_ = backbone.pool;
  feature_dim_ = backbone.feature_dim;

  if (options_.head.kind != "torchvision") {
    head = register_module("head",
                           build_head(options_.head, feature_dim_, options_.num_classes, norms));
  } else if (backbone.torchvision_head == "classifier") {
    // torchvision mobilenetv2.py: Dropout(p) -> Linear, Linear init N(0, 0.01), bias 0.
    torch::nn::Linear linear(feature_dim_, options_.num_classes);
    {
      torch::NoGradGuard no_grad;
      torch::nn::init::normal_(linear->weight, 0.0, 0.01);
      torch::nn::init::zeros_(linear->bias);
    }
    head = register_module("classifier",
                           torch::nn::Sequential(torch::nn::Dropout(options_.dropout), linear));
  } else if (backbone.torchvision_head == "fc") {
    // torchvision resnet.py: fc = Linear(512 * expansion, classes) with default init. `head`
    // shares it without registering a second path ("head.0.weight").
    auto fc = register_module("fc", torch::nn::Linear(feature_dim_, options_.num_classes));
    head = torch::nn::Sequential(fc);
  } else {
    throw Error("head.kind 'torchvision'",
                "backbone '" + options_.backbone + "' has no torchvision head",
                "use head.kind 'linear' or 'mlp', or a backbone such as mobilenet_v2 or resnet18");
  }
  norms.check_every_override_used();
}

void ClassifierImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (head) head->train(on);
}

std::vector<torch::nn::AnyModule*> ClassifierImpl::norm_slots() { return trunk_->norm_slots(); }

torch::Tensor ClassifierImpl::embed(torch::Tensor x) {
  // x: (N, C, H, W)
  TORCH_CHECK(x.dim() == 4, "Classifier expects (N, C, H, W) input, got ", x.sizes());
  x = trunk_->forward(x);         // maps (N, C', H', W'); mlp: (N, width)
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
