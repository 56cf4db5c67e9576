// Dynamic Momentum BatchNorm (nn/dmbn.h): in train mode a BatchNorm whose shadows are the
// running estimates of PyTorch BatchNorms with each candidate momentum; in eval mode the
// adopted estimate; adopt() with and without restart; candidate_esm; checkpoints carry it all.
#include "nn/dmbn.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "nn/norm.h"

namespace normlab::nn {
namespace {

const std::vector<double> kCandidates = {0.1, 0.35, 0.9};
constexpr double kEps = 1e-5;

Dmbn make_dmbn(int64_t channels, bool map) {
  DmbnLayerOptions o;
  o.channels = channels;
  o.map = map;
  o.eps = kEps;
  o.candidates = kCandidates;
  return Dmbn(o);
}

// PyTorch's BatchNorm1d (vectors) or BatchNorm2d (maps) with momentum `momentum`.
torch::nn::AnyModule torch_bn(int64_t channels, bool map, double momentum) {
  if (map) {
    return torch::nn::AnyModule(torch::nn::BatchNorm2d(
        torch::nn::BatchNorm2dOptions(channels).eps(kEps).momentum(momentum)));
  }
  return torch::nn::AnyModule(
      torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(channels).eps(kEps).momentum(momentum)));
}

torch::Tensor buffer(const torch::nn::Module& m, const std::string& name) {
  return m.named_buffers(/*recurse=*/false)[name];
}

// Batches whose mean and scale drift from one to the next, so each momentum gives a
// different running estimate.
std::vector<torch::Tensor> drifting_batches(int64_t channels, bool map, int64_t count = 5) {
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < count; ++i) {
    auto shape = map ? std::vector<int64_t>{6, channels, 3, 3} : std::vector<int64_t>{8, channels};
    out.push_back((1.0 + 0.5 * i) * torch::randn(shape) + 0.7 * i - 1.0);
  }
  return out;
}

// Random affine parameters (not the identity), copied into `other` when given.
void randomize_affine(torch::nn::Module& m, torch::nn::Module* other = nullptr) {
  torch::NoGradGuard no_grad;
  auto params = m.named_parameters(/*recurse=*/false);
  params["weight"].copy_(1.0 + 0.5 * torch::randn_like(params["weight"]));
  params["bias"].copy_(0.5 * torch::randn_like(params["bias"]));
  if (other != nullptr) {
    auto theirs = other->named_parameters(/*recurse=*/false);
    theirs["weight"].copy_(params["weight"]);
    theirs["bias"].copy_(params["bias"]);
  }
}

::testing::AssertionResult close(const torch::Tensor& got, const torch::Tensor& want,
                                 double tol = 1e-6) {
  if (got.sizes() != want.sizes()) {
    return ::testing::AssertionFailure() << "shape " << got.sizes() << " vs " << want.sizes();
  }
  if (torch::allclose(got.to(torch::kDouble), want.to(torch::kDouble), tol, tol)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "max |diff| = "
         << (got.to(torch::kDouble) - want.to(torch::kDouble)).abs().max().item<double>();
}

TEST(Dmbn, TrainModeIsTorchBatchNormWithItsGradients) {
  torch::manual_seed(0);
  for (bool map : {false, true}) {
    SCOPED_TRACE(map ? "maps" : "vectors");
    Dmbn d = make_dmbn(4, map);
    torch::nn::AnyModule ref = torch_bn(4, map, 0.1);
    randomize_affine(*d, ref.ptr().get());
    d->train();
    ref.ptr()->train();
    const torch::Tensor x0 = drifting_batches(4, map, 3).back();
    auto x1 = x0.clone().requires_grad_(true), x2 = x0.clone().requires_grad_(true);
    torch::Tensor y1 = d->forward(x1), y2 = ref.forward(x2);
    EXPECT_TRUE(close(y1, y2));
    const torch::Tensor w = torch::randn_like(y1);
    (y1 * w).sum().backward();
    (y2 * w).sum().backward();
    EXPECT_TRUE(close(x1.grad(), x2.grad()));
    EXPECT_TRUE(close(d->weight.grad(), ref.ptr()->named_parameters()["weight"].grad()));
    EXPECT_TRUE(close(d->bias.grad(), ref.ptr()->named_parameters()["bias"].grad()));
  }
}

TEST(Dmbn, EachShadowIsTheRunningEstimateOfABatchNormWithThatMomentum) {
  torch::manual_seed(1);
  for (bool map : {false, true}) {
    SCOPED_TRACE(map ? "maps" : "vectors");
    Dmbn d = make_dmbn(3, map);
    d->train();
    std::vector<torch::nn::AnyModule> refs;
    for (double beta : kCandidates) {
      refs.push_back(torch_bn(3, map, beta));
      refs.back().ptr()->train();
    }
    for (const auto& x : drifting_batches(3, map)) {
      d->forward(x);
      for (auto& r : refs) r.forward(x);
    }
    ASSERT_EQ(d->shadow_mean.sizes(), (std::vector<int64_t>{3, 3}));
    for (size_t k = 0; k < kCandidates.size(); ++k) {
      SCOPED_TRACE("beta " + std::to_string(kCandidates[k]));
      EXPECT_TRUE(close(d->shadow_mean[k], buffer(*refs[k].ptr(), "running_mean")));
      EXPECT_TRUE(close(d->shadow_var[k], buffer(*refs[k].ptr(), "running_var")));
    }
    // The shadows really differ (the test tells the momenta apart) ...
    EXPECT_FALSE(close(d->shadow_mean[0], d->shadow_mean[2], 1e-3));
    // ... and the running estimate eval mode uses waits for adopt().
    EXPECT_TRUE(torch::equal(d->running_mean, torch::zeros({3})));
    EXPECT_TRUE(torch::equal(d->running_var, torch::ones({3})));
  }
}

TEST(Dmbn, EvalModeNormalisesWithTheRunningEstimateAndKeepsTheShadows) {
  torch::manual_seed(2);
  for (bool map : {false, true}) {
    SCOPED_TRACE(map ? "maps" : "vectors");
    Dmbn d = make_dmbn(4, map);
    torch::nn::AnyModule ref = torch_bn(4, map, 0.1);
    randomize_affine(*d, ref.ptr().get());
    {
      torch::NoGradGuard no_grad;
      d->running_mean.copy_(0.4 * torch::randn({4}));
      d->running_var.copy_(0.5 + torch::rand({4}));
      buffer(*ref.ptr(), "running_mean").copy_(d->running_mean);
      buffer(*ref.ptr(), "running_var").copy_(d->running_var);
      d->shadow_mean.copy_(torch::randn({3, 4}));
    }
    const torch::Tensor shadows = d->shadow_mean.clone();
    d->eval();
    ref.ptr()->eval();
    const torch::Tensor x = drifting_batches(4, map, 2).back();
    EXPECT_TRUE(close(d->forward(x), ref.forward(x)));
    EXPECT_TRUE(torch::equal(d->shadow_mean, shadows));  // eval updates nothing
    d->train();
    EXPECT_FALSE(close(d->forward(x), ref.forward(x), 1e-3));  // batch statistics in train
  }
}

TEST(Dmbn, AdoptCopiesTheShadowAndRestartsEveryShadowFromIt) {
  torch::manual_seed(3);
  Dmbn d = make_dmbn(5, false);
  d->train();
  for (const auto& x : drifting_batches(5, false)) d->forward(x);
  Dmbn kept = std::dynamic_pointer_cast<DmbnImpl>(d->clone());
  const torch::Tensor mean = d->shadow_mean.clone(), var = d->shadow_var.clone();

  d->adopt(torch::tensor(int64_t{1}), /*restart=*/true);
  EXPECT_TRUE(torch::equal(d->running_mean, mean[1]));
  EXPECT_TRUE(torch::equal(d->running_var, var[1]));
  EXPECT_FLOAT_EQ(d->beta.item<float>(), 0.35f);
  for (int64_t k = 0; k < 3; ++k) {
    EXPECT_TRUE(torch::equal(d->shadow_mean[k], mean[1])) << k;
    EXPECT_TRUE(torch::equal(d->shadow_var[k], var[1])) << k;
  }
  // After a restart the shadows are again EMAs of the new batches from the adopted estimate.
  const torch::Tensor x = drifting_batches(5, false, 1).front();
  d->forward(x);
  auto [bvar, bmean] = torch::var_mean(x, {0}, /*unbiased=*/true);
  EXPECT_TRUE(close(d->shadow_mean[2], 0.1 * mean[1] + 0.9 * bmean));
  EXPECT_TRUE(close(d->shadow_var[0], 0.9 * var[1] + 0.1 * bvar));

  // Without restart the shadows stay as they were; only the running estimate changes.
  kept->adopt(torch::tensor(int64_t{2}), /*restart=*/false);
  EXPECT_TRUE(torch::equal(kept->running_mean, mean[2]));
  EXPECT_TRUE(torch::equal(kept->running_var, var[2]));
  EXPECT_FLOAT_EQ(kept->beta.item<float>(), 0.9f);
  EXPECT_TRUE(torch::equal(kept->shadow_mean, mean));
  EXPECT_TRUE(torch::equal(kept->shadow_var, var));
}

TEST(Dmbn, CandidateEsmIsTheDistanceOfEachShadowToThePopulationMean) {
  torch::manual_seed(4);
  Dmbn d = make_dmbn(6, true);
  d->train();
  for (const auto& x : drifting_batches(6, true)) d->forward(x);
  const torch::Tensor mu = torch::randn({6}, torch::kDouble);
  const torch::Tensor esm = d->candidate_esm(mu);
  ASSERT_EQ(esm.sizes(), (std::vector<int64_t>{3}));
  EXPECT_EQ(esm.scalar_type(), torch::kDouble);
  auto shadow = d->shadow_mean.to(torch::kDouble).contiguous();
  auto s = shadow.accessor<double, 2>();
  auto m = mu.accessor<double, 1>();
  for (int64_t k = 0; k < 3; ++k) {
    double sum = 0;
    for (int64_t c = 0; c < 6; ++c) sum += (s[k][c] - m[c]) * (s[k][c] - m[c]);
    EXPECT_NEAR(esm[k].item<double>(), std::sqrt(sum), 1e-12) << k;
  }
  // A float32 population mean is accepted too.
  EXPECT_TRUE(close(d->candidate_esm(mu.to(torch::kFloat)), esm, 1e-6));
}

TEST(Dmbn, CheckpointsCarryShadowsRunningEstimateAndBeta) {
  torch::manual_seed(5);
  Dmbn d = make_dmbn(4, true);
  randomize_affine(*d);
  d->train();
  auto batches = drifting_batches(4, true, 4);
  for (size_t i = 0; i < 3; ++i) d->forward(batches[i]);
  d->adopt(torch::tensor(int64_t{0}), /*restart=*/false);
  for (const std::string name :
       {"running_mean", "running_var", "shadow_mean", "shadow_var", "beta", "betas"}) {
    EXPECT_TRUE(d->named_buffers().contains(name)) << name;
  }

  std::stringstream bytes;
  torch::save(d, bytes);
  Dmbn loaded = make_dmbn(4, true);
  torch::load(loaded, bytes);
  for (const auto& b : d->named_buffers()) {
    EXPECT_TRUE(torch::equal(b.value(), loaded->named_buffers()[b.key()])) << b.key();
  }
  // Resumed, both continue bit-identically: a training step, an adoption, an evaluation.
  loaded->train();
  EXPECT_TRUE(torch::equal(d->forward(batches[3]), loaded->forward(batches[3])));
  EXPECT_TRUE(torch::equal(d->shadow_mean, loaded->shadow_mean));
  EXPECT_TRUE(torch::equal(d->shadow_var, loaded->shadow_var));
  d->adopt(torch::tensor(int64_t{2}), true);
  loaded->adopt(torch::tensor(int64_t{2}), true);
  d->eval();
  loaded->eval();
  EXPECT_TRUE(torch::equal(d->forward(batches[0]), loaded->forward(batches[0])));
  EXPECT_TRUE(torch::equal(d->beta, loaded->beta));
}

TEST(Dmbn, BuiltByTheNormTableWithTheCandidatesOfNormOptions) {
  NormOptions o;
  o.eps = 1e-3;
  o.dmbn_candidates = {0.25, 0.5};
  for (auto input : {NormInput::kVector, NormInput::kMap}) {
    auto norm = make_norm("dmbn", 6, input, o);
    auto* d = dynamic_cast<DmbnImpl*>(norm.ptr().get());
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->options.candidates, o.dmbn_candidates);
    EXPECT_EQ(d->options.map, input == NormInput::kMap);
    EXPECT_DOUBLE_EQ(d->options.eps, 1e-3);
    EXPECT_EQ(d->shadow_mean.sizes(), (std::vector<int64_t>{2, 6}));
    EXPECT_TRUE(is_batch_norm(*d));
  }
  DmbnLayerOptions none;
  none.channels = 2;
  EXPECT_THROW(Dmbn{none}, c10::Error);
}

}  // namespace
}  // namespace normlab::nn
