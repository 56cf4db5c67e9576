// models::folded_prefix: BatchNorm folded into the preceding convolutions computes the
// eval-mode prefix's features (within 1e-5 of their scale), folds every BatchNorm2d that
// follows a Conv2d in the prefix and none after it, and leaves the model it copies untouched.
#include "models/fold_batchnorm.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "models/prefix.h"

namespace normlab::models {
namespace {

Classifier random_mobilenet(bool tf_same_padding) {
  ModelOptions m;
  m.backbone = "mobilenet_v2";
  m.width_mult = 0.25;
  m.in_channels = 3;
  m.input_hw = 64;
  m.num_classes = 10;
  m.tf_same_padding = tf_same_padding;
  torch::manual_seed(3);
  Classifier model = build_model(m);
  // Statistics and affine parameters far from the identity, so a wrong fold shows.
  torch::NoGradGuard no_grad;
  for (const auto& item : model->named_modules()) {
    if (auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(item.value().get())) {
      const int64_t c = bn->options.num_features();
      bn->running_mean.copy_(0.3 * torch::randn({c}));
      bn->running_var.copy_(0.5 + torch::rand({c}));
      bn->weight.copy_(1.0 + 0.3 * torch::randn({c}));
      bn->bias.copy_(0.3 * torch::randn({c}));
    }
  }
  model->eval();
  return model;
}

double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  return (got - want).abs().max().item<double>() / want.abs().max().item<double>();
}

TEST(FoldBatchNorm, SameFeaturesAsTheEvalModePrefix) {
  for (bool tf_same : {false, true}) {
    for (bool channels_last : {false, true}) {
      Classifier model = random_mobilenet(tf_same);
      const int64_t cut = cut_point(*model, {"features.18"});
      int64_t folded = 0;
      Classifier copy = folded_prefix(*model, cut, channels_last, &folded);
      // features.0: 1, features.1: 2, features.2-17: 3 each; features.18 is not in the prefix.
      EXPECT_EQ(folded, 1 + 2 + 16 * 3);
      torch::NoGradGuard no_grad;
      const torch::Tensor x = torch::randn({6, 3, 64, 64});
      const torch::Tensor want = model->forward_prefix(x, cut);
      const torch::Tensor got =
          run_prefix(*copy, channels_last ? models::channels_last(x) : x, cut).contiguous();
      EXPECT_LT(relative_error(got, want), 1e-5)
          << "tf_same " << tf_same << " channels_last " << channels_last;
      // An earlier cut is a prefix of the same computation.
      EXPECT_LT(relative_error(run_prefix(*copy, x, 5), model->forward_prefix(x, 5)), 1e-5);
    }
  }
}

TEST(FoldBatchNorm, LeavesTheModelAloneAndFoldsOnlyBeforeTheCut) {
  Classifier model = random_mobilenet(false);
  std::map<std::string, torch::Tensor> before;
  for (const auto& p : model->named_parameters()) before[p.key()] = p.value().clone();
  for (const auto& b : model->named_buffers()) before[b.key()] = b.value().clone();
  int64_t folded = 0;
  Classifier copy = folded_prefix(*model, 10, false, &folded);
  EXPECT_EQ(folded, 1 + 2 + 8 * 3);  // features.0-9
  for (const auto& p : model->named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), before[p.key()])) << p.key() << " changed";
  }
  for (const auto& b : model->named_buffers()) {
    EXPECT_TRUE(torch::equal(b.value(), before[b.key()])) << b.key() << " changed";
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({2, 3, 64, 64});
  EXPECT_LT(relative_error(run_prefix(*copy, x, 10), model->forward_prefix(x, 10)), 1e-5);
}

}  // namespace
}  // namespace normlab::models
