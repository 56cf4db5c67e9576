// Classification models as a backbone trunk + optional global average pooling + `head`.
// Module paths follow torchvision naming so that "features.3" or "layer4.1.bn2" mean the same
// in a study file as in a torchvision state_dict: mobilenet_v2 registers "features", resnets
// "conv1", "bn1", "layer1".."layer4"; the head is "head", or with HeadOptions.kind
// "torchvision" torchvision's own "classifier" (mobilenet_v2) or "fc" (resnet).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/option_fields.h"
#include "models/norm_slots.h"
#include "nn/norm.h"

namespace normlab::models {

struct HeadOptions {
  // "linear": Linear(in, classes).
  // "mlp": Linear(in, hidden) -> Norm -> ReLU -> Dropout(dropout) -> Linear(hidden, classes)
  //        (STUDIES.md S0); norm "none" gives S1's baseline head.
  // "norm_mlp": Norm -> Linear(in, hidden) -> ReLU -> Dropout(dropout) -> Linear (S3's head:
  //        BatchNorm on the pooled features first).
  // "torchvision": torchvision's own head at its own name (torchvision backbones only):
  //        mobilenet_v2 "classifier" = Dropout(ModelOptions.dropout) -> Linear (keys
  //        classifier.1.weight/bias); resnet "fc" = Linear (fc.weight/bias).
  std::string kind = "mlp";
  int64_t hidden = 256;
  std::string norm = "bn";
  double dropout = 0.2;
};
// The keys of model.head: kind, hidden, norm, dropout.
void describe(HeadOptions& o, OptionFields& f);

struct ModelOptions {
  // "small_cnn" | "mlp" | "mobilenet_v2" | "resnet18" | "resnet50" | "resnet18_cifar" |
  // "resnet50_cifar" (the _cifar resnets: 3x3 stride-1 stem, no max-pool, same keys).
  std::string backbone = "small_cnn";
  int64_t in_channels = 1;
  int64_t input_hw = 28;  // input height = width (mlp flattens C*H*W)
  int64_t num_classes = 10;
  std::string norm = "bn";  // backbone norm slots
  nn::NormOptions norm_options;
  // Per-slot norm overrides: module-path pattern -> norm spec, e.g. {"layer*.*.bn2", "gn:16"}
  // (XBNBlock-P2). Patterns as models::path_matches; the last matching entry wins; head
  // slots ("head.1") may be overridden too. A pattern matching no slot is an Error.
  std::vector<std::pair<std::string, std::string>> norm_overrides;
  // BN-BFN (Huang et al., CVPR 2022; seed 004): "off"; "alternate" (every second backbone BN
  // slot becomes bfn_norm; for mlp and small_cnn); "xbn-p1" | "xbn-p2" | "xbn-p3" (resnet50
  // bottlenecks: their first, second or third BN becomes bfn_norm, the XBNBlock-P1..P3
  // placements). Explicit norm_overrides apply after these.
  std::string bn_bfn = "off";
  std::string bfn_norm = "auto";  // "auto": "ln" for alternate, "gn:64" for xbn-p* (DESIGN.md)
  int64_t width = 32;             // small_cnn base width / mlp hidden width
  int64_t depth = 4;              // small_cnn blocks / mlp hidden layers
  // mobilenet_v2: width multiplier (torchvision's _make_divisible); resnets: every channel
  // count times width_mult, rounded (1 = torchvision's; state_dict keys are the same).
  double width_mult = 1.0;
  double dropout = 0.2;  // dropout of head kind "torchvision" (mobilenet_v2's classifier.0)
  // mobilenet_v2 from TF/Keras: the stride-2 3x3 convs pad like TF 'SAME' (zero-pad right
  // and bottom by 1 for even sizes, then padding 0) instead of torchvision's symmetric 1.
  bool tf_same_padding = false;
  HeadOptions head;
};
// ModelOptions' keys in the model table: backbone, norm, width, depth, NormOptions' bn_momentum
// and bn_eps, width_mult, dropout, tf_same_padding, norm_overrides, bn_bfn, bfn_norm, head.
// in_channels, input_hw and num_classes come from the data, not from the table.
void describe(ModelOptions& o, OptionFields& f);

// Every ModelOptions.bn_bfn.
std::vector<std::string> bn_bfn_names();

class Trunk;

class ClassifierImpl : public torch::nn::Module, public NormSlotOwner {
 public:
  explicit ClassifierImpl(const ModelOptions& options);
  // x: (N, C, H, W) float -> logits (N, num_classes)
  torch::Tensor forward(torch::Tensor x);
  // Backbone output as fed to the head: (N, feature_dim).
  torch::Tensor embed(torch::Tensor x);

  // Stages: the trunk's top-level blocks in order, then global average pooling (if any);
  // stage i's parameters live under stage_paths()[i]. A frozen prefix [0, cut) can run once
  // for several models whose tails differ:
  //   forward(x) == forward_from(forward_prefix(x, cut), cut) for every cut in [0, num_stages()].
  int64_t num_stages() const;
  std::vector<std::vector<std::string>> stage_paths() const;
  // The stage owning a parameter or buffer path; num_stages() for the head.
  int64_t stage_of(const std::string& path) const;
  torch::Tensor forward_prefix(torch::Tensor x, int64_t cut);
  torch::Tensor forward_from(torch::Tensor h, int64_t cut);
  // Stage `from`'s input -> stage `to`'s input (from <= to): the stages in between, so that
  //   forward_prefix(x, to) == forward_between(forward_prefix(x, from), from, to).
  torch::Tensor forward_between(torch::Tensor h, int64_t from, int64_t to);

  int64_t feature_dim() const { return feature_dim_; }
  const ModelOptions& options() const { return options_; }

  // Also sets the mode of `head` when it is not registered under "head" (resnet's "fc").
  void train(bool on = true) override;
  // Norm layers the trunk calls directly (resnet's stem "bn1"), for recalibrate_batchnorm.
  std::vector<torch::nn::AnyModule*> norm_slots() override;

  // The "features" Sequential of small_cnn, mlp and mobilenet_v2; null for resnets.
  torch::nn::Sequential features{nullptr};
  // The head: registered as "head", or for kind "torchvision" the "classifier" Sequential
  // (mobilenet_v2) or an unregistered Sequential holding the registered "fc" (resnet).
  torch::nn::Sequential head{nullptr};

 private:
  ModelOptions options_;
  std::shared_ptr<Trunk> trunk_;
  bool pool_ = true;
  int64_t feature_dim_ = 0;
};
TORCH_MODULE(Classifier);

// Builds a model by backbone name. Throws Error naming an unknown backbone or bad option.
Classifier build_model(const ModelOptions& options);

// Registered backbone names, iterated by tests (every backbone x every norm).
std::vector<std::string> backbone_names();

}  // namespace normlab::models
