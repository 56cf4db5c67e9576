#include "train/optimizer.h"

#include <sstream>
#include <type_traits>
#include <utility>

#include "core/error.h"

namespace normlab::train {
namespace {

template <typename Opt, typename GroupOptions, typename MakeOptions>
std::unique_ptr<torch::optim::Optimizer> build(const ParamPlan& plan, MakeOptions make) {
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (const auto& g : plan.groups) {
    groups.emplace_back(g.params, std::make_unique<GroupOptions>(make(g.lr)));
  }
  return std::make_unique<Opt>(std::move(groups), make(plan.groups.front().lr));
}

template <typename Key>
Key state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream address;  // c10::guts::to_string's format, which 2.x removed
    address << p.unsafeGetTensorImpl();
    return address.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

using StateKey = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;

}  // namespace

torch::optim::OptimizerParamState* find_param_state(torch::optim::Optimizer& optimizer,
                                                    const torch::Tensor& p) {
  auto& state = optimizer.state();
  auto it = state.find(state_key<StateKey>(p));
  return it == state.end() ? nullptr : it->second.get();
}

void set_param_state(torch::optim::Optimizer& optimizer, const torch::Tensor& p,
                     std::unique_ptr<torch::optim::OptimizerParamState> state) {
  optimizer.state()[state_key<StateKey>(p)] = std::move(state);
}

void describe(OptimizerOptions& o, OptionFields& f) {
  f.field("name", o.name, optimizer_names());
  f.field("lr", o.lr, Range{1e-300, 1e300, "> 0"});
  f.field("weight_decay", o.weight_decay, Range{0, 10, "in [0, 10]"});
  f.field("momentum", o.momentum, Range{0, 1, "in [0, 1]"});
  f.field("nesterov", o.nesterov);
  f.field("beta1", o.beta1, Range{0, 0.999999, "in [0, 1)"});
  f.field("beta2", o.beta2, Range{0, 0.999999, "in [0, 1)"});
  f.field("eps", o.eps, Range{0, 1, "in [0, 1]"});
}

std::vector<std::string> optimizer_names() { return {"adam", "adamw", "sgd"}; }

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& o,
                                                        const ParamPlan& plan) {
  require(!plan.groups.empty(), "optimizer", "no trainable parameters");
  if (o.name == "adam") {
    return build<torch::optim::Adam, torch::optim::AdamOptions>(plan, [&](double lr) {
      return torch::optim::AdamOptions(lr)
          .betas({o.beta1, o.beta2})
          .eps(o.eps)
          .weight_decay(o.weight_decay);
    });
  }
  if (o.name == "adamw") {
    return build<torch::optim::AdamW, torch::optim::AdamWOptions>(plan, [&](double lr) {
      return torch::optim::AdamWOptions(lr)
          .betas({o.beta1, o.beta2})
          .eps(o.eps)
          .weight_decay(o.weight_decay);
    });
  }
  if (o.name == "sgd") {
    require(!o.nesterov || o.momentum > 0, "train.optimizer.nesterov",
            "Nesterov momentum needs momentum > 0");
    return build<torch::optim::SGD, torch::optim::SGDOptions>(plan, [&](double lr) {
      return torch::optim::SGDOptions(lr)
          .momentum(o.momentum)
          .nesterov(o.nesterov)
          .weight_decay(o.weight_decay);
    });
  }
  throw Error("train.optimizer.name '" + o.name + "'", "unknown optimizer",
              "use one of: adam, adamw, sgd");
}

void set_lr_scale(torch::optim::Optimizer& optimizer, const ParamPlan& plan, double factor) {
  auto& groups = optimizer.param_groups();
  for (size_t i = 0; i < groups.size() && i < plan.groups.size(); ++i) {
    groups[i].options().set_lr(plan.groups[i].lr * factor);
  }
}

}  // namespace normlab::train
