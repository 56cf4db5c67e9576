#include "train/params.h"

#include <limits>

#include "core/error.h"
#include "core/path_pattern.h"

namespace normlab::train {
namespace {

std::string top_level_modules(torch::nn::Module& model) {
  std::string out;
  for (const auto& item : model.named_children()) {
    if (!out.empty()) out += ", ";
    out += item.key();
  }
  return out;
}

}  // namespace

void describe(GroupRule& r, OptionFields& f) {
  f.field("pattern", r.pattern);
  f.field(
      "lr", r.lr,
      Range{std::numeric_limits<double>::min(), std::numeric_limits<double>::infinity(), "> 0"});
}

bool pattern_matches(const std::string& pattern, const std::string& param_name) {
  return path_matches(pattern, param_name);
}

ParamPlan plan_parameters(torch::nn::Module& model, const std::vector<std::string>& trainable,
                          const std::vector<GroupRule>& rules, double base_lr) {
  auto named = model.named_parameters(/*recurse=*/true);
  for (const auto& pattern : trainable) {
    bool any = false;
    for (const auto& p : named) any = any || pattern_matches(pattern, p.key());
    require(any, "train.trainable pattern '" + pattern + "'", "matches no parameter of the model",
            "module paths start with one of: " + top_level_modules(model));
  }
  for (const auto& rule : rules) {
    bool any = false;
    for (const auto& p : named) any = any || pattern_matches(rule.pattern, p.key());
    require(any, "train.param_groups pattern '" + rule.pattern + "'",
            "matches no parameter of the model",
            "module paths start with one of: " + top_level_modules(model));
    require(rule.lr > 0, "train.param_groups pattern '" + rule.pattern + "'",
            "lr must be > 0, got " + std::to_string(rule.lr));
  }

  ParamPlan plan;
  std::vector<ParamGroup> groups(rules.size() + 1);
  for (size_t i = 0; i < rules.size(); ++i) {
    groups[i].pattern = rules[i].pattern;
    groups[i].lr = rules[i].lr;
  }
  groups.back().lr = base_lr;
  for (auto& p : named) {
    bool trains = trainable.empty();
    for (const auto& pattern : trainable) trains = trains || pattern_matches(pattern, p.key());
    p.value().set_requires_grad(trains);
    if (!trains) {
      plan.frozen.push_back(p.key());
      continue;
    }
    plan.trainable.push_back(p.key());
    size_t g = rules.size();
    for (size_t i = 0; i < rules.size(); ++i) {
      if (pattern_matches(rules[i].pattern, p.key())) {
        g = i;
        break;
      }
    }
    groups[g].names.push_back(p.key());
    groups[g].params.push_back(p.value());
  }
  for (auto& g : groups) {
    if (!g.params.empty()) plan.groups.push_back(std::move(g));
  }
  require(!plan.trainable.empty(), "train.trainable", "no parameter is left trainable");
  return plan;
}

}  // namespace normlab::train
