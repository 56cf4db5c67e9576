#include "train/params.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "train/optimizer.h"

namespace normlab::train {
namespace {

struct TwoLayer : torch::nn::Module {
  TwoLayer() {
    features = register_module(
        "features", torch::nn::Sequential(torch::nn::Linear(4, 3), torch::nn::Linear(3, 3)));
    head = register_module("head", torch::nn::Linear(3, 2));
  }
  torch::nn::Sequential features{nullptr};
  torch::nn::Linear head{nullptr};
};

TEST(PatternMatches, ComponentPrefixesAndWildcards) {
  EXPECT_TRUE(pattern_matches("features.1", "features.1.weight"));
  EXPECT_TRUE(pattern_matches("features", "features.0.bias"));
  EXPECT_FALSE(pattern_matches("features.1", "features.10.weight"));  // not a string prefix
  EXPECT_TRUE(pattern_matches("features.*.bias", "features.7.bias"));
  EXPECT_FALSE(pattern_matches("features.*.bias", "features.7.weight"));
  EXPECT_TRUE(pattern_matches("head.weight", "head.weight"));
  EXPECT_FALSE(pattern_matches("", "head.weight"));
}

TEST(PlanParameters, FreezesAndGroups) {
  TwoLayer m;
  auto plan = plan_parameters(m, {"features.1", "head"}, {{"features.1", 1e-5}}, 1e-3);
  EXPECT_EQ(plan.frozen, (std::vector<std::string>{"features.0.weight", "features.0.bias"}));
  ASSERT_EQ(plan.groups.size(), 2u);
  EXPECT_EQ(plan.groups[0].pattern, "features.1");
  EXPECT_DOUBLE_EQ(plan.groups[0].lr, 1e-5);
  EXPECT_EQ(plan.groups[0].names.size(), 2u);
  EXPECT_DOUBLE_EQ(plan.groups[1].lr, 1e-3);
  EXPECT_EQ(plan.groups[1].names, (std::vector<std::string>{"head.weight", "head.bias"}));
  EXPECT_FALSE(m.features[0]->as<torch::nn::Linear>()->weight.requires_grad());
  EXPECT_TRUE(m.head->weight.requires_grad());

  auto opt = make_optimizer(OptimizerOptions{}, plan);
  ASSERT_EQ(opt->param_groups().size(), 2u);
  EXPECT_DOUBLE_EQ(opt->param_groups()[0].options().get_lr(), 1e-5);
  EXPECT_DOUBLE_EQ(opt->param_groups()[1].options().get_lr(), 1e-3);
  set_lr_scale(*opt, plan, 0.5);
  EXPECT_DOUBLE_EQ(opt->param_groups()[0].options().get_lr(), 5e-6);
}

TEST(PlanParameters, EmptyTrainableMeansAll) {
  TwoLayer m;
  auto plan = plan_parameters(m, {}, {}, 1e-3);
  EXPECT_TRUE(plan.frozen.empty());
  EXPECT_EQ(plan.trainable.size(), 6u);
}

TEST(PlanParameters, TypoedPatternIsRefusedWithName) {
  TwoLayer m;
  try {
    plan_parameters(m, {"featurs.1"}, {}, 1e-3);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("featurs.1"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("features, head"), std::string::npos) << e.what();
  }
  EXPECT_THROW(plan_parameters(m, {}, {{"hed", 1e-3}}, 1e-3), Error);
}

TEST(MakeOptimizer, NamesAndErrors) {
  TwoLayer m;
  auto plan = plan_parameters(m, {}, {}, 1e-3);
  for (const auto& name : optimizer_names()) {
    OptimizerOptions o;
    o.name = name;
    EXPECT_NO_THROW(make_optimizer(o, plan)) << name;
  }
  OptimizerOptions bad;
  bad.name = "adagradd";
  EXPECT_THROW(make_optimizer(bad, plan), Error);
  OptimizerOptions nesterov;
  nesterov.name = "sgd";
  nesterov.nesterov = true;
  nesterov.momentum = 0;
  EXPECT_THROW(make_optimizer(nesterov, plan), Error);
}

TEST(MakeOptimizer, SgdNesterovStepMatchesFormula) {
  // One parameter, two steps of SGD with Nesterov momentum (PyTorch's formulation):
  // b = mu*b + g; p -= lr * (g + mu*b).
  struct One : torch::nn::Module {
    One() { w = register_parameter("w", torch::tensor({1.0})); }
    torch::Tensor w;
  } m;
  auto plan = plan_parameters(m, {}, {}, 0.1);
  OptimizerOptions o;
  o.name = "sgd";
  o.lr = 0.1;
  o.momentum = 0.9;
  o.nesterov = true;
  auto opt = make_optimizer(o, plan);
  double p = 1.0, b = 0.0;
  for (int i = 0; i < 2; ++i) {
    opt->zero_grad();
    (m.w * m.w).sum().backward();  // g = 2p
    opt->step();
    double g = 2 * p;
    b = 0.9 * b + g;
    p -= 0.1 * (g + 0.9 * b);
  }
  EXPECT_NEAR(m.w.item<double>(), p, 1e-6);
}

}  // namespace
}  // namespace normlab::train
