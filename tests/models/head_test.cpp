// Heads: the S3 "norm_mlp" head (Norm -> Linear -> ReLU -> Dropout -> Linear), its module
// paths, where its norm sits, every head norm, and the errors users can cause.
#include "models/head.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "models/model.h"
#include "nn/norm.h"

namespace normlab::models {
namespace {

constexpr int64_t kIn = 12;
constexpr int64_t kHidden = 6;
constexpr int64_t kClasses = 5;

HeadOptions norm_mlp(const std::string& norm, double dropout = 0.25) {
  HeadOptions h;
  h.kind = "norm_mlp";
  h.hidden = kHidden;
  h.norm = norm;
  h.dropout = dropout;
  return h;
}

torch::nn::Sequential head_of(const HeadOptions& h, NormFactory& norms) {
  return build_head(h, kIn, kClasses, norms);
}

torch::nn::Sequential head_of(const HeadOptions& h) {
  NormFactory norms({}, nn::NormOptions{});
  return head_of(h, norms);
}

template <typename T>
T* child_as(const torch::nn::Sequential& seq, size_t i) {
  return dynamic_cast<T*>(seq->ptr(i).get());
}

std::string build_error(const HeadOptions& h) {
  try {
    head_of(h);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Head, KindsAreListed) {
  EXPECT_EQ(head_kinds(), (std::vector<std::string>{"linear", "mlp", "torchvision", "norm_mlp"}));
}

TEST(Head, NormMlpModulesAndShapes) {
  torch::manual_seed(0);
  auto head = head_of(norm_mlp("bn", 0.25));
  ASSERT_EQ(head->size(), 5u);
  auto* bn = child_as<torch::nn::BatchNorm1dImpl>(head, 0);
  ASSERT_NE(bn, nullptr);
  EXPECT_EQ(bn->options.num_features(), kIn);  // the norm sees the embedding
  auto* fc1 = child_as<torch::nn::LinearImpl>(head, 1);
  ASSERT_NE(fc1, nullptr);
  EXPECT_EQ(fc1->weight.sizes(), (std::vector<int64_t>{kHidden, kIn}));
  EXPECT_NE(child_as<torch::nn::ReLUImpl>(head, 2), nullptr);
  auto* dropout = child_as<torch::nn::DropoutImpl>(head, 3);
  ASSERT_NE(dropout, nullptr);
  EXPECT_DOUBLE_EQ(dropout->options.p(), 0.25);
  auto* fc2 = child_as<torch::nn::LinearImpl>(head, 4);
  ASSERT_NE(fc2, nullptr);
  EXPECT_EQ(fc2->weight.sizes(), (std::vector<int64_t>{kClasses, kHidden}));

  EXPECT_EQ(head->forward(torch::randn({4, kIn})).sizes(), (std::vector<int64_t>{4, kClasses}));
  head->eval();
  EXPECT_EQ(head->forward(torch::randn({1, kIn})).sizes(), (std::vector<int64_t>{1, kClasses}));

  // Norm "none" keeps the indices: head.0 is Identity, head.1 and head.4 the Linears.
  auto plain = head_of(norm_mlp("none"));
  ASSERT_EQ(plain->size(), 5u);
  EXPECT_NE(child_as<torch::nn::IdentityImpl>(plain, 0), nullptr);
  EXPECT_NE(child_as<torch::nn::LinearImpl>(plain, 1), nullptr);
  EXPECT_NE(child_as<torch::nn::LinearImpl>(plain, 4), nullptr);
}

TEST(Head, NormMlpAppliesTheNormBeforeTheFirstLinear) {
  torch::manual_seed(1);
  // Features far from zero mean / unit variance, as a frozen backbone's embedding is.
  auto x = torch::randn({16, kIn}) * torch::linspace(0.5, 8.0, kIn) + torch::linspace(-3, 5, kIn);
  auto head = head_of(norm_mlp("bn", 0.0));
  auto norm = head[0];
  auto fc1 = head[1];
  auto fc2 = head[4];
  auto compose = [&](const torch::Tensor& in) {
    return fc2->as<torch::nn::Linear>()->forward(torch::relu(
        fc1->as<torch::nn::Linear>()->forward(norm->as<torch::nn::BatchNorm1d>()->forward(in))));
  };
  torch::NoGradGuard no_grad;
  head->train();  // batch statistics; dropout 0 is the identity
  EXPECT_TRUE(torch::allclose(head->forward(x), compose(x), 1e-6, 1e-6));
  head->eval();  // running statistics; dropout off
  EXPECT_TRUE(torch::allclose(head->forward(x), compose(x), 1e-6, 1e-6));

  // With batch statistics the head cannot see a per-feature rescaling and shift of its input:
  // only true when the BatchNorm comes before the first Linear.
  head->train();
  auto scale = torch::linspace(0.2, 5.0, kIn);
  auto shift = torch::linspace(10.0, -10.0, kIn);
  EXPECT_TRUE(torch::allclose(head->forward(x), head->forward(x * scale + shift), 1e-4, 1e-4));
  // The S0 "mlp" head (Linear first) does see it.
  HeadOptions mlp = norm_mlp("bn", 0.0);
  mlp.kind = "mlp";
  auto s0 = head_of(mlp);
  s0->train();
  EXPECT_FALSE(torch::allclose(s0->forward(x), s0->forward(x * scale + shift), 1e-4, 1e-4));
}

TEST(Head, NormMlpBuildsWithEveryVectorNorm) {
  for (std::string norm : nn::norm_names()) {
    if (norm == "gn:G") norm = "gn:3";
    HeadOptions h = norm_mlp(norm);
    if (norm == "in") {  // instance norm needs spatial axes: refused for vectors
      std::string msg = build_error(h);
      EXPECT_NE(msg.find("'in'"), std::string::npos) << msg;
      continue;
    }
    torch::manual_seed(2);
    auto head = head_of(h);
    ASSERT_EQ(head->size(), 5u) << norm;
    auto y = head->forward(torch::randn({4, kIn}) * 3 + 1);
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{4, kClasses})) << norm;
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>()) << norm;
    y.sum().backward();
    for (const auto& p : head->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << norm << " " << p.key();
      EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << norm << " " << p.key();
    }
    head->eval();
    EXPECT_EQ(head->forward(torch::randn({2, kIn})).sizes(), (std::vector<int64_t>{2, kClasses}));
  }
}

TEST(Head, NormMlpInAClassifierHasStablePathsAndTakesOverrides) {
  ModelOptions o;  // small_cnn
  o.width = 4;
  o.depth = 2;
  o.input_hw = 12;
  o.num_classes = kClasses;
  o.head = norm_mlp("bn");
  Classifier model = build_model(o);
  const int64_t d = model->feature_dim();
  auto params = model->named_parameters();
  auto buffers = model->named_buffers();
  ASSERT_TRUE(params.contains("head.0.weight"));
  EXPECT_EQ(params["head.0.weight"].sizes(), (std::vector<int64_t>{d}));
  EXPECT_TRUE(buffers.contains("head.0.running_mean"));
  EXPECT_EQ(params["head.1.weight"].sizes(), (std::vector<int64_t>{kHidden, d}));
  EXPECT_EQ(params["head.4.weight"].sizes(), (std::vector<int64_t>{kClasses, kHidden}));
  EXPECT_FALSE(params.contains("head.2.weight"));
  model->eval();
  EXPECT_EQ(model->forward(torch::randn({3, 1, 12, 12})).sizes(),
            (std::vector<int64_t>{3, kClasses}));

  // model.norm_overrides reaches the head's norm by its path.
  o.norm_overrides = {{"head.0", "ln"}};
  Classifier ln = build_model(o);
  EXPECT_NE(dynamic_cast<torch::nn::LayerNormImpl*>(ln->head->ptr(0).get()), nullptr);
  EXPECT_NE(dynamic_cast<torch::nn::BatchNorm1dImpl*>(model->head->ptr(0).get()), nullptr);
  // The S0 head's slot name does not exist in this head: the override is refused.
  o.norm_overrides = {{"head.1", "ln"}};
  EXPECT_THROW(build_model(o), Error);
}

TEST(Head, ErrorsNameTheBadValue) {
  HeadOptions h = norm_mlp("bn");
  h.kind = "transformer";
  std::string msg = build_error(h);
  EXPECT_NE(msg.find("transformer"), std::string::npos) << msg;
  EXPECT_NE(msg.find("norm_mlp"), std::string::npos) << msg;

  h = norm_mlp("bn");
  h.hidden = 0;
  msg = build_error(h);
  EXPECT_NE(msg.find("head.hidden"), std::string::npos) << msg;

  h = norm_mlp("bn", 1.0);
  msg = build_error(h);
  EXPECT_NE(msg.find("head.dropout"), std::string::npos) << msg;

  msg = build_error(norm_mlp("gn:5"));  // 5 groups do not divide 12 features
  EXPECT_NE(msg.find("gn:5"), std::string::npos) << msg;
}

}  // namespace
}  // namespace normlab::models
