#include "train/guards.h"

namespace normlab::train {

EvalModeGuard::EvalModeGuard(torch::nn::Module& model)
    : root_(model), root_training_(model.is_training()) {
  for (auto& m : model.modules(/*include_self=*/false)) modes_.emplace_back(m, m->is_training());
  model.eval();
}

EvalModeGuard::~EvalModeGuard() {
  // Module::train() recurses into children; modules() lists parents before children, so
  // restoring in that order leaves every module with its own saved flag.
  root_.train(root_training_);
  for (auto& [m, training] : modes_) m->train(training);
}

WeightRestoreGuard::WeightRestoreGuard(std::vector<torch::Tensor> params)
    : params_(std::move(params)) {
  torch::NoGradGuard no_grad;
  saved_.reserve(params_.size());
  for (const auto& p : params_) saved_.push_back(p.detach().clone());
}

WeightRestoreGuard::~WeightRestoreGuard() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) params_[i].copy_(saved_[i]);
}

}  // namespace normlab::train
