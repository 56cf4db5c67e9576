// FRN + TLU against the equation of Singh & Krishnan (2020), computed by explicit loops:
//   nu^2 = mean_{H,W}(x^2);  x_hat = x / sqrt(nu^2 + eps);  y = max(gamma * x_hat + beta, tau)
#include "nn/frn.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "nn/norm.h"

namespace normlab::nn {
namespace {

constexpr double kEps0 = 1e-6;  // FrnOptions default, the paper's eps

enum class Mean { kSpatial, kFeatures };

// The paper's equation with loops, in double. x: (N, C, H, W) or (N, C); a vector feature
// is a 1x1 map unless `mean` averages over the feature axis.
torch::Tensor frn_reference(const torch::Tensor& x_in, const torch::Tensor& gamma_in,
                            const torch::Tensor& beta_in, const torch::Tensor& tau_in, double eps,
                            Mean mean = Mean::kSpatial) {
  const auto x4 = (x_in.dim() == 2 ? x_in.view({x_in.size(0), x_in.size(1), 1, 1}) : x_in)
                      .to(torch::kDouble)
                      .contiguous();
  const auto g = gamma_in.to(torch::kDouble).contiguous();
  const auto b = beta_in.to(torch::kDouble).contiguous();
  const auto t = tau_in.to(torch::kDouble).contiguous();
  auto out = torch::empty_like(x4);
  auto X = x4.accessor<double, 4>();
  auto Y = out.accessor<double, 4>();
  const int64_t n = x4.size(0), c = x4.size(1), h = x4.size(2), w = x4.size(3);
  for (int64_t i = 0; i < n; ++i) {
    double feature_mean = 0;  // mean over C of x^2 (Mean::kFeatures, 1x1 only)
    for (int64_t k = 0; k < c; ++k) feature_mean += X[i][k][0][0] * X[i][k][0][0] / c;
    for (int64_t k = 0; k < c; ++k) {
      double nu2 = 0;
      for (int64_t r = 0; r < h; ++r)
        for (int64_t s = 0; s < w; ++s) nu2 += X[i][k][r][s] * X[i][k][r][s] / (h * w);
      if (mean == Mean::kFeatures) nu2 = feature_mean;
      for (int64_t r = 0; r < h; ++r)
        for (int64_t s = 0; s < w; ++s) {
          const double x_hat = X[i][k][r][s] / std::sqrt(nu2 + eps);
          Y[i][k][r][s] =
              std::max(g[k].item<double>() * x_hat + b[k].item<double>(), t[k].item<double>());
        }
    }
  }
  return out.view(x_in.sizes());
}

// Random gamma, beta, tau (tau around -0.3 so that the TLU clamps some entries, not all).
void randomise(FrnImpl& frn) {
  torch::NoGradGuard no_grad;
  frn.weight.copy_(1.0 + 0.5 * torch::randn_like(frn.weight));
  frn.bias.copy_(0.5 * torch::randn_like(frn.bias));
  frn.tau.copy_(-0.3 + 0.3 * torch::randn_like(frn.tau));
}

std::set<std::string> parameter_names(const torch::nn::Module& m) {
  std::set<std::string> names;
  for (const auto& p : m.named_parameters()) names.insert(p.key());
  return names;
}

TEST(Frn, InitialisationAndParameterNames) {
  Frn map(FrnOptions(3));
  EXPECT_EQ(parameter_names(*map), (std::set<std::string>{"weight", "bias", "tau"}));
  EXPECT_FALSE(map->eps_l.defined());
  EXPECT_TRUE(torch::equal(map->weight, torch::ones({3})));
  EXPECT_TRUE(torch::equal(map->bias, torch::zeros({3})));
  EXPECT_TRUE(torch::equal(map->tau, torch::zeros({3})));

  Frn learned(FrnOptions(3).learned_eps(true));
  EXPECT_EQ(parameter_names(*learned), (std::set<std::string>{"weight", "bias", "tau", "eps_l"}));
  ASSERT_EQ(learned->eps_l.sizes(), (std::vector<int64_t>{1}));
  EXPECT_FLOAT_EQ(learned->eps_l.item<float>(), 1e-4f);
}

TEST(Frn, MapsMatchTheEquation) {
  torch::manual_seed(1);
  Frn frn(FrnOptions(3));
  frn->to(torch::kDouble);
  randomise(*frn);
  auto x = torch::randn({2, 3, 4, 5}, torch::kDouble);  // (N, C, H, W)
  auto y = frn->forward(x);
  auto want = frn_reference(x, frn->weight, frn->bias, frn->tau, kEps0);
  ASSERT_EQ(y.sizes(), x.sizes());
  EXPECT_TRUE(torch::allclose(y, want, 1e-12, 1e-12));
  // The threshold is active somewhere and inactive somewhere, so both branches are checked.
  auto clamped = (y == frn->tau.view({1, 3, 1, 1})).to(torch::kDouble).mean().item<double>();
  EXPECT_GT(clamped, 0.05);
  EXPECT_LT(clamped, 0.95);
}

TEST(Frn, LearnedEpsOnMapsUsesEps0PlusAbsEpsL) {
  torch::manual_seed(2);
  Frn frn(FrnOptions(3).learned_eps(true));
  frn->to(torch::kDouble);
  randomise(*frn);
  {
    torch::NoGradGuard no_grad;
    frn->eps_l.fill_(-0.7);
  }
  auto x = torch::randn({2, 3, 2, 2}, torch::kDouble);
  auto want = frn_reference(x, frn->weight, frn->bias, frn->tau, kEps0 + 0.7);
  EXPECT_TRUE(torch::allclose(frn->forward(x), want, 1e-12, 1e-12));
}

// On vectors (1x1 maps) plain FRN gives x / sqrt(x^2 + 1e-6), i.e. sign(x) for |x| >> 1e-3.
// make_norm("frn", kVector) turns on the learned epsilon, whose initial 1e-4 keeps small
// activations resolved: x = 0.01 maps to about 0.7, not 1.
TEST(Frn, VectorsUseLearnedEpsAndDoNotDegenerateToSign) {
  auto any = make_norm("frn", 4, NormInput::kVector);
  auto* frn = dynamic_cast<FrnImpl*>(any.ptr().get());
  ASSERT_NE(frn, nullptr);
  ASSERT_TRUE(frn->eps_l.defined());
  {
    torch::NoGradGuard no_grad;
    frn->tau.fill_(-10);  // TLU inactive: y = x_hat
  }
  auto x = torch::tensor({{0.01f, -0.01f, 0.02f, 1.0f}, {-0.005f, 0.003f, -2.0f, 0.05f}});
  auto y = any.forward(x);  // (N, C)
  auto expected = x / torch::sqrt(x * x + (kEps0 + 1e-4));
  EXPECT_TRUE(torch::allclose(y, expected, 1e-5, 1e-6));
  EXPECT_GT((y - torch::sign(x)).abs().max().item<float>(), 0.25f);  // not sign(x)

  // Without the learned epsilon the same input does collapse to (nearly) sign(x).
  Frn plain(FrnOptions(4));
  {
    torch::NoGradGuard no_grad;
    plain->tau.fill_(-10);
  }
  auto degenerate = plain->forward(x);
  auto large = x.abs() >= 0.01;
  EXPECT_LT((degenerate - torch::sign(x)).abs().masked_select(large).max().item<float>(), 0.01f);

  // eps = eps0 + |eps_l|: a negative eps_l acts like its magnitude.
  {
    torch::NoGradGuard no_grad;
    frn->eps_l.fill_(-0.5);
  }
  EXPECT_TRUE(torch::allclose(any.forward(x), x / torch::sqrt(x * x + (kEps0 + 0.5)), 1e-5, 1e-6));
}

TEST(Frn, VectorsMatchTheEquationWithLearnedEps) {
  torch::manual_seed(4);
  Frn frn(FrnOptions(5).learned_eps(true));
  frn->to(torch::kDouble);
  randomise(*frn);
  auto x = torch::randn({3, 5}, torch::kDouble);
  // eps_l starts at 1e-4 (held in float, then cast): eps = eps0 + |eps_l|.
  ASSERT_NEAR(frn->eps_l.item<double>(), 1e-4, 1e-11);
  auto want = frn_reference(x, frn->weight, frn->bias, frn->tau,
                            kEps0 + std::abs(frn->eps_l.item<double>()));
  EXPECT_TRUE(torch::allclose(frn->forward(x), want, 1e-12, 1e-12));
}

TEST(Frn, MeanOverFeaturesVariant) {
  torch::manual_seed(5);
  auto any = make_norm("frn:mean", 5, NormInput::kVector);
  auto* frn = dynamic_cast<FrnImpl*>(any.ptr().get());
  ASSERT_NE(frn, nullptr);
  EXPECT_FALSE(frn->eps_l.defined());
  frn->to(torch::kDouble);
  randomise(*frn);
  auto x = torch::randn({3, 5}, torch::kDouble);
  auto want = frn_reference(x, frn->weight, frn->bias, frn->tau, kEps0, Mean::kFeatures);
  EXPECT_TRUE(torch::allclose(any.forward(x), want, 1e-12, 1e-12));
  // ... and it is not the per-feature (1x1) normalisation.
  auto per_feature = frn_reference(x, frn->weight, frn->bias, frn->tau, kEps0);
  EXPECT_FALSE(torch::allclose(want, per_feature, 1e-3, 1e-3));
}

TEST(Frn, RejectsBadInputs) {
  Frn frn(FrnOptions(3));
  EXPECT_THROW(frn->forward(torch::randn({2, 4, 3, 3})), c10::Error);  // wrong C
  EXPECT_THROW(frn->forward(torch::randn({2, 3, 3})), c10::Error);     // 3-d
  Frn mean(FrnOptions(3).mean_over_features(true));
  EXPECT_THROW(mean->forward(torch::randn({2, 3, 3, 3})), c10::Error);
  EXPECT_THROW(Frn{FrnOptions(0)}, c10::Error);
}

TEST(Frn, CloneKeepsLearnedEpsAndIsIndependent) {
  Frn frn(FrnOptions(3).learned_eps(true));
  auto copy = std::dynamic_pointer_cast<FrnImpl>(frn->clone());
  ASSERT_NE(copy, nullptr);
  ASSERT_TRUE(copy->eps_l.defined());
  {
    torch::NoGradGuard no_grad;
    frn->eps_l.fill_(0.5);
  }
  EXPECT_FLOAT_EQ(copy->eps_l.item<float>(), 1e-4f);
}

// Autograd against central finite differences, in double, for input and every parameter.
void expect_gradients_match_finite_differences(FrnImpl& frn, const torch::Tensor& x_in) {
  auto x = x_in.clone().requires_grad_(true);
  const auto w = torch::randn_like(x);  // loss = (y * w).sum()
  auto loss = [&]() { return (frn.forward(x) * w).sum(); };
  loss().backward();

  std::vector<std::pair<std::string, torch::Tensor>> leaves{{"x", x}};
  for (const auto& p : frn.named_parameters()) leaves.emplace_back(p.key(), p.value());
  // Small step: near x = 0 the curvature in eps_l is large (d^3/d eps^3 ~ (x^2+eps)^-3.5).
  constexpr double kStep = 1e-7;
  for (auto& [name, t] : leaves) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(t.grad().defined());
    torch::NoGradGuard no_grad;
    auto flat = t.view({-1});
    auto numeric = torch::empty_like(flat);
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const double v = flat[i].item<double>();
      flat[i] = v + kStep;
      const double up = loss().item<double>();
      flat[i] = v - kStep;
      const double down = loss().item<double>();
      flat[i] = v;
      numeric[i] = (up - down) / (2 * kStep);
    }
    auto analytic = t.grad().view({-1});
    EXPECT_TRUE(torch::allclose(analytic, numeric, 1e-5, 1e-6))
        << "max |diff| = " << (analytic - numeric).abs().max().item<double>()
        << " max |grad| = " << analytic.abs().max().item<double>();
    EXPECT_GT(analytic.abs().max().item<double>(), 0.0);  // every leaf gets a gradient
  }
}

TEST(Frn, GradientsMatchFiniteDifferencesOnMaps) {
  torch::manual_seed(6);
  Frn frn(FrnOptions(3).learned_eps(true));
  frn->to(torch::kDouble);
  randomise(*frn);
  {
    torch::NoGradGuard no_grad;
    frn->eps_l.fill_(0.05);  // large enough that d/d eps_l is well above rounding noise
  }
  expect_gradients_match_finite_differences(*frn, torch::randn({2, 3, 3, 3}, torch::kDouble));
}

TEST(Frn, GradientsMatchFiniteDifferencesOnVectors) {
  torch::manual_seed(7);
  auto any = make_norm("frn", 4, NormInput::kVector);
  auto* frn = dynamic_cast<FrnImpl*>(any.ptr().get());
  frn->to(torch::kDouble);
  randomise(*frn);
  expect_gradients_match_finite_differences(*frn, 0.1 * torch::randn({5, 4}, torch::kDouble));
}

TEST(Frn, GradientsMatchFiniteDifferencesForMeanVariant) {
  torch::manual_seed(8);
  Frn frn(FrnOptions(4).mean_over_features(true));
  frn->to(torch::kDouble);
  randomise(*frn);
  expect_gradients_match_finite_differences(*frn, torch::randn({5, 4}, torch::kDouble));
}

}  // namespace
}  // namespace normlab::nn
