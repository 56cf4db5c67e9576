// Which parameters train, and with which learning rate. Patterns are module paths as in a
// state_dict ("features.3", "head", "features.*.1", "layer*.0"): core/path_pattern.h's
// matcher, the one every pattern of a study file goes through.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/option_fields.h"

namespace normlab::train {

bool pattern_matches(const std::string& pattern, const std::string& param_name);

struct GroupRule {
  std::string pattern;
  double lr = 0;  // > 0
};
// An entry of train.param_groups: {pattern = "...", lr = ...}.
void describe(GroupRule& r, OptionFields& f);

struct ParamGroup {
  std::string pattern;  // "" for the default group (base learning rate)
  double lr = 0;
  std::vector<std::string> names;
  std::vector<torch::Tensor> params;
};

struct ParamPlan {
  std::vector<ParamGroup> groups;      // non-empty groups only
  std::vector<std::string> trainable;  // parameter names that train
  std::vector<std::string> frozen;     // parameter names that do not
};

// Applies the freezing policy (sets requires_grad) and assigns each trainable parameter to
// the first rule whose pattern matches it, else to the default group at base_lr. An empty
// `trainable` list means every parameter trains. A pattern that matches no parameter is an
// Error naming it (a typo would otherwise silently freeze or mis-schedule a layer).
ParamPlan plan_parameters(torch::nn::Module& model, const std::vector<std::string>& trainable,
                          const std::vector<GroupRule>& rules, double base_lr);

}  // namespace normlab::train
