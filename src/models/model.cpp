#include "models/model.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "models/backbone.h"
#include "models/head.h"
#include "nn/global_avg_pool.h"

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
  torch::Tensor forward_stages(const torch::Tensor& x, int64_t begin, int64_t end) override {
    torch::Tensor y = x;
    for (auto it = features_->begin() + begin; it != features_->begin() + end; ++it) {
      y = it->forward(y);
    }
    return y;
  }
  std::vector<std::vector<std::string>> stages() const override {
    std::vector<std::vector<std::string>> out;
    for (size_t i = 0; i < features_->size(); ++i) out.push_back({"features." + std::to_string(i)});
    return out;
  }

 private:
  torch::nn::Sequential features_;
};

}  // namespace

void describe(HeadOptions& o, OptionFields& f) {
  f.field("kind", o.kind, head_kinds());
  f.field("hidden", o.hidden, Range{1, std::numeric_limits<double>::infinity(), "> 0"});
  f.field("norm", o.norm, nn::check_norm_spec);
  f.field("dropout", o.dropout, Range{0, 0.99, "in [0, 0.99]"});
}

void describe(ModelOptions& o, OptionFields& f) {
  const Range positive{1, std::numeric_limits<double>::infinity(), "> 0"};
  f.field("backbone", o.backbone, backbone_names());
  f.field("norm", o.norm, nn::check_norm_spec);
  f.field("width", o.width, positive);
  f.field("depth", o.depth, positive);
  describe(o.norm_options, f);
  f.field("width_mult", o.width_mult, Range{0.01, 10, "in [0.01, 10]"});
  f.field("dropout", o.dropout, Range{0, 0.99, "in [0, 0.99]"});
  f.field("tf_same_padding", o.tf_same_padding);
  f.field("norm_overrides", o.norm_overrides, nn::check_norm_spec);
  f.field("bn_bfn", o.bn_bfn, bn_bfn_names());
  // Whether the norm is batch-free is checked with the rest of the run (study/run_options.cpp).
  f.field("bfn_norm", o.bfn_norm, [](const std::string& norm) {
    if (norm != "auto") nn::check_norm_spec(norm);
  });
  f.table("head", o.head);
}

std::vector<std::string> bn_bfn_names() {
  return {"off", "alternate", "xbn-p1", "xbn-p2", "xbn-p3"};
}

namespace {

// The norm factory of a model: BN-BFN placements first, then the study's own overrides.
NormFactory norm_factory(const ModelOptions& o) {
  auto overrides = o.norm_overrides;
  std::string alternate;
  // XBNBlock's GroupNorm has 64 groups: the official scripts (github.com/huangleiBuaa/XBNBlock,
  // experiments/ResNet50_XBNBlock_P*.sh) pass --norm-cfg=num_groups=64.
  const std::string bfn = o.bfn_norm != "auto"      ? o.bfn_norm
                          : o.bn_bfn == "alternate" ? "ln"
                                                    : "gn:64";
  if (o.bn_bfn == "alternate") {
    alternate = bfn;
  } else if (o.bn_bfn.rfind("xbn-p", 0) == 0) {
    require(o.backbone == "resnet50" || o.backbone == "resnet50_cifar", "model.bn_bfn",
            "'" + o.bn_bfn + "' places GroupNorm in ResNet-50's bottlenecks; backbone '" +
                o.backbone + "' has none",
            "use bn_bfn = \"alternate\" for mlp and small_cnn");
    const std::string slot = "bn" + o.bn_bfn.substr(5);  // xbn-p2 -> bn2
    overrides.insert(overrides.begin(), {"layer*.*." + slot, bfn});
    // The official XBNBlock ResNets (models/resnet_XBNBlock_P*.py there) also make the stem's
    // norm batch-free; the downsample shortcuts keep BatchNorm.
    overrides.insert(overrides.begin(), {"bn1", bfn});
  } else {
    std::string names;
    for (const auto& n : bn_bfn_names()) names += (names.empty() ? "" : ", ") + n;
    require(o.bn_bfn == "off", "model.bn_bfn", "unknown value '" + o.bn_bfn + "'",
            "use one of: " + names);
  }
  return NormFactory(std::move(overrides), o.norm_options, alternate);
}

}  // namespace

ClassifierImpl::ClassifierImpl(const ModelOptions& options) : options_(options) {
  NormFactory norms = norm_factory(options_);
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
  x = trunk_->forward(x);                 // maps (N, C', H', W'); mlp: (N, width)
  if (pool_) x = nn::global_avg_pool(x);  // (N, C')
  return x;                               // (N, feature_dim)
}

torch::Tensor ClassifierImpl::forward(torch::Tensor x) {
  // x: (N, C, H, W) -> logits (N, num_classes)
  return head->forward(embed(std::move(x)));
}

int64_t ClassifierImpl::num_stages() const {
  return static_cast<int64_t>(trunk_->stages().size()) + (pool_ ? 1 : 0);
}

std::vector<std::vector<std::string>> ClassifierImpl::stage_paths() const {
  auto out = trunk_->stages();
  if (pool_) out.emplace_back();  // global average pooling owns no parameters
  return out;
}

int64_t ClassifierImpl::stage_of(const std::string& path) const {
  auto stages = stage_paths();
  for (size_t i = 0; i < stages.size(); ++i) {
    for (const auto& prefix : stages[i]) {
      if (path == prefix || path.rfind(prefix + ".", 0) == 0) return static_cast<int64_t>(i);
    }
  }
  return num_stages();  // the head
}

torch::Tensor ClassifierImpl::forward_prefix(torch::Tensor x, int64_t cut) {
  // x: (N, C, H, W) -> stage `cut`'s input: maps (N, C', H', W') or, past pooling, (N, D)
  return forward_between(x, 0, cut);
}

torch::Tensor ClassifierImpl::forward_from(torch::Tensor h, int64_t cut) {
  // h: forward_prefix(x, cut) -> logits (N, num_classes)
  return head->forward(forward_between(h, cut, num_stages()));
}

torch::Tensor ClassifierImpl::forward_between(torch::Tensor h, int64_t from, int64_t to) {
  TORCH_CHECK(from >= 0 && from <= to && to <= num_stages(), "stages [", from, ", ", to,
              ") outside [0, ", num_stages(), "]");
  const int64_t trunk_stages = static_cast<int64_t>(trunk_->stages().size());
  if (from < trunk_stages) h = trunk_->forward_stages(h, from, std::min(to, trunk_stages));
  if (pool_ && from <= trunk_stages && to > trunk_stages) h = nn::global_avg_pool(h);  // (N, C')
  return h;
}

Classifier build_model(const ModelOptions& options) { return Classifier(options); }

std::vector<std::string> backbone_names() {
  std::vector<std::string> names;
  for (const auto& entry : backbone_table()) names.push_back(entry.first);
  return names;
}

}  // namespace normlab::models
