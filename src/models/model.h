// Classification models as `features` (backbone) + optional global average pooling + `head`.
// Module paths follow torchvision naming so that "features.3" or "head.0" mean the same in
// a study file as in a state_dict.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "nn/norm.h"

namespace normlab::models {

struct HeadOptions {
  // "linear": Linear(in, classes).
  // "mlp": Linear(in, hidden) -> Norm -> ReLU -> Dropout(dropout) -> Linear(hidden, classes)
  //        (STUDIES.md S0); norm "none" gives S1's baseline head.
  std::string kind = "mlp";
  int64_t hidden = 256;
  std::string norm = "bn";
  double dropout = 0.2;
};

struct ModelOptions {
  std::string backbone = "small_cnn";  // "small_cnn" | "mlp"
  int64_t in_channels = 1;
  int64_t input_hw = 28;  // input height = width (mlp flattens C*H*W)
  int64_t num_classes = 10;
  std::string norm = "bn";  // backbone norm slots
  nn::NormOptions norm_options;
  int64_t width = 32;  // small_cnn base width / mlp hidden width
  int64_t depth = 4;   // small_cnn blocks / mlp hidden layers
  HeadOptions head;
};

class ClassifierImpl : public torch::nn::Module {
 public:
  explicit ClassifierImpl(const ModelOptions& options);
  // x: (N, C, H, W) float -> logits (N, num_classes)
  torch::Tensor forward(torch::Tensor x);
  // Backbone output as fed to the head: (N, feature_dim).
  torch::Tensor embed(torch::Tensor x);

  int64_t feature_dim() const { return feature_dim_; }
  const ModelOptions& options() const { return options_; }

  torch::nn::Sequential features{nullptr};
  torch::nn::Sequential head{nullptr};

 private:
  ModelOptions options_;
  bool pool_ = true;
  int64_t feature_dim_ = 0;
};
TORCH_MODULE(Classifier);

// Builds a model by backbone name. Throws Error naming an unknown backbone or bad option.
Classifier build_model(const ModelOptions& options);

// Registered backbone names, iterated by tests (every backbone x every norm).
std::vector<std::string> backbone_names();

}  // namespace normlab::models
