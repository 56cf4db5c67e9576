// Optimizers by name ("adam", "adamw", "sgd") over the parameter groups of a ParamPlan.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/option_fields.h"

#include "train/params.h"

namespace normlab::train {

struct OptimizerOptions {
  std::string name = "adam";
  double lr = 1e-3;
  double weight_decay = 0;  // L2 for adam/sgd; decoupled for adamw (Loshchilov & Hutter 2019)
  double momentum = 0.9;    // sgd only
  bool nesterov = false;    // sgd only
  double beta1 = 0.9;       // adam/adamw
  double beta2 = 0.999;
  double eps = 1e-8;
};

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& options,
                                                        const ParamPlan& plan);

std::vector<std::string> optimizer_names();

// The fields of train.optimizer: their defaults are the struct's (core/option_fields.h).
void describe(OptimizerOptions& o, OptionFields& f);

// The optimizer's state of parameter `p` (nullptr before its first step). LibTorch 1.x keys
// the state by the TensorImpl's address printed as a string, 2.x by the pointer itself.
torch::optim::OptimizerParamState* find_param_state(torch::optim::Optimizer& optimizer,
                                                    const torch::Tensor& p);
void set_param_state(torch::optim::Optimizer& optimizer, const torch::Tensor& p,
                     std::unique_ptr<torch::optim::OptimizerParamState> state);

// Multiplies every group's learning rate by `factor` relative to its configured value.
void set_lr_scale(torch::optim::Optimizer& optimizer, const ParamPlan& plan, double factor);

}  // namespace normlab::train
