// Guards that restore model state on scope exit, so probes and evaluation never leave a
// model in a different mode or with different weights than they found it (STYLE.md rule 6).
#pragma once

#include <torch/torch.h>

#include <vector>

namespace normlab::train {

// Puts every module in eval mode; restores each module's own train/eval flag afterwards
// (a frozen BatchNorm may be in eval mode inside a training model).
class EvalModeGuard {
 public:
  explicit EvalModeGuard(torch::nn::Module& model);
  ~EvalModeGuard();
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  std::vector<std::pair<std::shared_ptr<torch::nn::Module>, bool>> modes_;
  torch::nn::Module& root_;
  bool root_training_;
};

// Copies the given tensors and writes the copies back on scope exit.
class WeightRestoreGuard {
 public:
  explicit WeightRestoreGuard(std::vector<torch::Tensor> params);
  ~WeightRestoreGuard();
  WeightRestoreGuard(const WeightRestoreGuard&) = delete;
  WeightRestoreGuard& operator=(const WeightRestoreGuard&) = delete;

 private:
  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> saved_;
};

}  // namespace normlab::train
