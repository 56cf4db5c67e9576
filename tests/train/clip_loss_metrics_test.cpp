#include <gtest/gtest.h>

#include "core/error.h"
#include "train/clip.h"
#include "train/loss.h"
#include "train/metrics.h"
#include "train/recorder.h"

namespace normlab::train {
namespace {

std::vector<torch::Tensor> params_with_grads(std::vector<torch::Tensor> grads) {
  std::vector<torch::Tensor> ps;
  for (auto& g : grads) {
    auto p = torch::zeros_like(g).requires_grad_();
    p.mutable_grad() = g.clone();
    ps.push_back(p);
  }
  return ps;
}

TEST(Clip, NormClippingMatchesClipGradNorm) {
  auto ps = params_with_grads({torch::tensor({3.0f, 0.0f}), torch::tensor({4.0f})});
  torch::Tensor pre = clip_gradients(ps, {/*max_norm=*/1.0, /*max_value=*/0});
  EXPECT_FLOAT_EQ(pre.item<float>(), 5.0f);  // returned norm is the pre-clip one
  float coef = 1.0f / (5.0f + 1e-6f);
  EXPECT_NEAR(ps[0].grad()[0].item<float>(), 3.0f * coef, 1e-6);
  EXPECT_NEAR(ps[1].grad()[0].item<float>(), 4.0f * coef, 1e-6);
  // Compare with LibTorch's own implementation on the same gradients.
  auto ref = params_with_grads({torch::tensor({3.0f, 0.0f}), torch::tensor({4.0f})});
  torch::nn::utils::clip_grad_norm_(ref, 1.0);
  EXPECT_TRUE(torch::allclose(ps[0].grad(), ref[0].grad()));
  EXPECT_TRUE(torch::allclose(ps[1].grad(), ref[1].grad()));
}

TEST(Clip, BelowThresholdAndDisabledLeaveGradients) {
  auto ps = params_with_grads({torch::tensor({0.3f, 0.4f})});
  EXPECT_FLOAT_EQ(clip_gradients(ps, {1.0, 0}).item<float>(), 0.5f);
  EXPECT_TRUE(torch::equal(ps[0].grad(), torch::tensor({0.3f, 0.4f})));
  auto qs = params_with_grads({torch::tensor({30.0f, 40.0f})});
  EXPECT_FLOAT_EQ(clip_gradients(qs, {0, 0}).item<float>(), 50.0f);
  EXPECT_TRUE(torch::equal(qs[0].grad(), torch::tensor({30.0f, 40.0f})));
}

TEST(Clip, ValueClipping) {
  auto ps = params_with_grads({torch::tensor({-3.0f, 0.5f, 2.0f})});
  clip_gradients(ps, {0, 1.0});
  EXPECT_TRUE(torch::equal(ps[0].grad(), torch::tensor({-1.0f, 0.5f, 1.0f})));
}

TEST(Loss, MatchesPyTorchWithAndWithoutSmoothing) {
  torch::manual_seed(0);
  auto logits = torch::randn({8, 5});
  auto y = torch::randint(0, 5, {8}, torch::kLong);
  for (double eps : {0.0, 0.05, 0.3}) {
    auto ref = torch::nn::functional::cross_entropy(
        logits, y, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(eps));
    EXPECT_NEAR(cross_entropy(logits, y, eps).item<double>(), ref.item<double>(), 1e-6) << eps;
  }
}

TEST(Loss, RefusesMisshapenTargets) {
  auto logits = torch::randn({4, 3});
  EXPECT_THROW(cross_entropy(logits, torch::zeros({4, 1}, torch::kLong)), c10::Error);
  EXPECT_THROW(cross_entropy(logits, torch::zeros({3}, torch::kLong)), c10::Error);
  EXPECT_THROW(cross_entropy(logits, torch::zeros({4}, torch::kLong), 1.5), Error);
}

TEST(Metrics, HandComputedConfusion) {
  // true:  0 0 0 1 1 2 ; pred: 0 0 1 1 2 2
  auto t = torch::tensor({0, 0, 0, 1, 1, 2}, torch::kLong);
  auto p = torch::tensor({0, 0, 1, 1, 2, 2}, torch::kLong);
  auto c = confusion_matrix(p, t, 3);
  auto expected = torch::tensor({2, 1, 0, 0, 1, 1, 0, 0, 1}, torch::kLong).view({3, 3});
  EXPECT_TRUE(torch::equal(c, expected)) << c;
  auto m = metrics_from_confusion(c);
  EXPECT_NEAR(m.accuracy, 100.0 * 4 / 6, 1e-9);
  // Recall: 2/3, 1/2, 1/1. Specificity: class0 TN=3,FP=0 ->1; class1 TN=3,FP=1 -> 3/4;
  // class2 TN=4, FP=1 -> 4/5. F1: 2*2/(4+0+1)=0.8; 2/(2+1+1)=0.5; 2/(2+1+0)=2/3.
  EXPECT_NEAR(m.macro_sensitivity, (2.0 / 3 + 0.5 + 1.0) / 3, 1e-12);
  EXPECT_NEAR(m.macro_specificity, (1.0 + 0.75 + 0.8) / 3, 1e-12);
  EXPECT_NEAR(m.macro_f1, (0.8 + 0.5 + 2.0 / 3) / 3, 1e-12);
}

TEST(Metrics, PerfectAndAbsentClass) {
  auto t = torch::tensor({0, 1, 1}, torch::kLong);
  auto m = metrics_from_confusion(confusion_matrix(t, t, 3));  // class 2 never occurs
  EXPECT_DOUBLE_EQ(m.accuracy, 100.0);
  EXPECT_DOUBLE_EQ(m.macro_sensitivity, 1.0);
  EXPECT_DOUBLE_EQ(m.macro_f1, 1.0);
  EXPECT_DOUBLE_EQ(m.macro_specificity, 1.0);
}

TEST(Recorder, FlushesStepValuesInOrder) {
  Recorder r;
  r.step_values({"a", "b"}, 0, torch::tensor({1.0f, 2.0f}));
  r.step_value("loss", 0, torch::tensor(0.5f));
  r.step_values({"a", "b"}, 1, torch::tensor({3.0f, 4.0f}));
  r.epoch_value("val/acc", 0, 88.5);
  auto f = r.flush();
  ASSERT_EQ(f.step_scalars.size(), 5u);
  EXPECT_EQ(f.step_scalars[0].name, "a");
  EXPECT_EQ(f.step_scalars[2].name, "loss");
  EXPECT_DOUBLE_EQ(f.step_scalars[2].value, 0.5);
  EXPECT_EQ(f.step_scalars[4].step, 1);
  EXPECT_DOUBLE_EQ(f.step_scalars[4].value, 4.0);
  ASSERT_EQ(f.epoch_scalars.size(), 1u);
  EXPECT_DOUBLE_EQ(f.epoch_scalars[0].value, 88.5);
  EXPECT_TRUE(r.flush().step_scalars.empty());
  // Device values of an epoch series, histograms, surfaces and matrices come back typed.
  r.epoch_values({"x", "y"}, 2, torch::tensor({0.25, 0.75}));
  BinSpec spec{"linear", 0, 1, 2};
  r.histograms({"h"}, store::Axis::kStep, 7, spec,
               histograms_packed({torch::tensor({0.1, 0.2, 0.9})}, spec));
  r.surface("s", 2, store::Surface{"a", "b", "c", {0, 1}, {5}, {{1, 2}}});
  r.matrix("m", 2, store::Matrix{{"p"}, {"q"}, {{3}}});
  auto g = r.flush();
  ASSERT_EQ(g.epoch_scalars.size(), 2u);
  EXPECT_EQ(g.epoch_scalars[1].name, "y");
  EXPECT_EQ(g.epoch_scalars[1].step, 2);
  EXPECT_DOUBLE_EQ(g.epoch_scalars[1].value, 0.75);
  ASSERT_EQ(g.histograms.size(), 1u);
  EXPECT_EQ(g.histograms[0].step, 7);
  EXPECT_EQ(g.histograms[0].hist.counts, (std::vector<int64_t>{2, 1}));
  ASSERT_EQ(g.surfaces.size(), 1u);
  EXPECT_EQ(g.surfaces[0].surface.z[0][1], 2);
  ASSERT_EQ(g.matrices.size(), 1u);
  EXPECT_TRUE(r.flush().empty());
  EXPECT_THROW(r.step_values({"a"}, 0, torch::tensor({1.0f, 2.0f})), c10::Error);
}

}  // namespace
}  // namespace normlab::train
