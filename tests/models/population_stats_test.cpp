// Population statistics of every running-statistics norm's input (models/population_stats.h):
// against the sub-networks run by hand over the concatenated data, in eval mode and with
// batch statistics upstream, and the model's state left exactly as it was.
#include "models/population_stats.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "nn/dmbn.h"

namespace normlab::models {
namespace {

using Feed = std::function<void(const std::function<void(const torch::Tensor&)>&)>;

Feed serve(const std::vector<torch::Tensor>& batches) {
  return [batches](const std::function<void(const torch::Tensor&)>& consume) {
    for (const auto& b : batches) consume(b);
  };
}

// Batches of unequal sizes (so merging across batches is exercised), in float64.
std::vector<torch::Tensor> batches_of(std::vector<int64_t> shape, std::vector<int64_t> sizes) {
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < sizes.size(); ++i) {
    shape[0] = sizes[i];
    out.push_back(1.5 * torch::randn(shape, torch::kDouble) + 0.3 * static_cast<double>(i));
  }
  return out;
}

// Random running estimates and affine parameters, so eval-mode layers are not identities.
void randomize_norms(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (const auto& m : model.modules()) {
    auto buffers = m->named_buffers(/*recurse=*/false);
    auto params = m->named_parameters(/*recurse=*/false);
    if (!buffers.contains("running_mean")) continue;
    buffers["running_mean"].copy_(0.5 * torch::randn_like(buffers["running_mean"]));
    buffers["running_var"].copy_(0.5 + torch::rand_like(buffers["running_var"]));
    params["weight"].copy_(1.0 + 0.3 * torch::randn_like(params["weight"]));
    params["bias"].copy_(0.3 * torch::randn_like(params["bias"]));
  }
}

// Per-channel mean and unbiased variance of (N, C) or (N, C, H, W) values.
std::pair<torch::Tensor, torch::Tensor> channel_stats(const torch::Tensor& v) {
  const auto flat = v.transpose(0, 1).reshape({v.size(1), -1});
  return {flat.mean(1), flat.var(1, /*unbiased=*/true)};
}

::testing::AssertionResult rel_close(const torch::Tensor& got, const torch::Tensor& want,
                                     double rtol = 1e-9) {
  if (!got.defined()) return ::testing::AssertionFailure() << "undefined";
  if (got.sizes() != want.sizes()) {
    return ::testing::AssertionFailure() << "shape " << got.sizes() << " vs " << want.sizes();
  }
  const double err = (got - want).abs().max().item<double>() / want.abs().max().item<double>();
  if (err <= rtol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "relative difference " << err;
}

// Flatten -> Linear -> BN1d -> ReLU -> Dropout -> Linear -> BN1d, in float64.
torch::nn::Sequential small_mlp() {
  torch::nn::Sequential mlp(torch::nn::Flatten(), torch::nn::Linear(12, 6),
                            torch::nn::BatchNorm1d(6), torch::nn::ReLU(), torch::nn::Dropout(0.5),
                            torch::nn::Linear(6, 5), torch::nn::BatchNorm1d(5));
  mlp->to(torch::kDouble);
  randomize_norms(*mlp);
  return mlp;
}

// Conv -> BN2d -> ReLU -> Conv (stride 2) -> BN2d, in float64.
torch::nn::Sequential small_cnn() {
  torch::nn::Sequential cnn(torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 3, 3).padding(1)),
                            torch::nn::BatchNorm2d(3), torch::nn::ReLU(),
                            torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).stride(2)),
                            torch::nn::BatchNorm2d(4));
  cnn->to(torch::kDouble);
  randomize_norms(*cnn);
  return cnn;
}

std::vector<LayerPopulation> measure(torch::nn::Sequential& net,
                                     const std::vector<torch::Tensor>& batches,
                                     bool upstream_train = false) {
  return measure_population(
      *net, [&](const torch::Tensor& x) { return net->forward(x); }, serve(batches),
      PopulationOptions{upstream_train});
}

// Every buffer of `net`, cloned, by name.
std::map<std::string, torch::Tensor> buffers_of(torch::nn::Module& net) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& b : net.named_buffers()) out[b.key()] = b.value().clone();
  return out;
}

void expect_buffers(torch::nn::Module& net, const std::map<std::string, torch::Tensor>& before) {
  for (const auto& b : net.named_buffers()) {
    EXPECT_TRUE(torch::equal(b.value(), before.at(b.key()))) << b.key();
  }
}

TEST(PopulationStats, MlpLayersSeeTheEvalNetworksInputs) {
  torch::manual_seed(0);
  auto mlp = small_mlp();
  const auto batches = batches_of({0, 3, 2, 2}, {5, 7, 3});
  const auto pops = measure(mlp, batches);
  ASSERT_EQ(pops.size(), 2u);
  EXPECT_EQ(pops[0].path, "2");
  EXPECT_EQ(pops[1].path, "6");
  EXPECT_EQ(pops[0].module, mlp->ptr(2).get());
  EXPECT_EQ(pops[1].module, mlp->ptr(6).get());

  // By hand, in eval mode, over all 15 samples at once.
  mlp->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::cat(batches);
  const auto in1 = mlp[1]->as<torch::nn::Linear>()->forward(x.flatten(1));
  const auto h = torch::relu(mlp[2]->as<torch::nn::BatchNorm1d>()->forward(in1));
  const auto in2 = mlp[5]->as<torch::nn::Linear>()->forward(h);  // dropout is off
  for (const auto& [pop, input] : {std::pair{pops[0], in1}, std::pair{pops[1], in2}}) {
    SCOPED_TRACE(pop.path);
    EXPECT_EQ(pop.count, 15);
    EXPECT_EQ(pop.mean.scalar_type(), torch::kDouble);
    auto [mean, var] = channel_stats(input);
    EXPECT_TRUE(rel_close(pop.mean, mean));
    EXPECT_TRUE(rel_close(pop.var, var));
  }
}

TEST(PopulationStats, CnnLayersSeeTheEvalNetworksInputs) {
  torch::manual_seed(1);
  auto cnn = small_cnn();
  const auto batches = batches_of({0, 2, 6, 6}, {4, 1, 6});
  const auto pops = measure(cnn, batches);
  ASSERT_EQ(pops.size(), 2u);
  cnn->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::cat(batches);
  const auto in1 = cnn[0]->as<torch::nn::Conv2d>()->forward(x);
  const auto h = torch::relu(cnn[1]->as<torch::nn::BatchNorm2d>()->forward(in1));
  const auto in2 = cnn[3]->as<torch::nn::Conv2d>()->forward(h);
  EXPECT_EQ(pops[0].count, 11 * 6 * 6);  // N * H * W values per channel
  EXPECT_EQ(pops[1].count, 11 * 2 * 2);
  for (const auto& [pop, input] : {std::pair{pops[0], in1}, std::pair{pops[1], in2}}) {
    SCOPED_TRACE(pop.path);
    auto [mean, var] = channel_stats(input);
    EXPECT_TRUE(rel_close(pop.mean, mean));
    EXPECT_TRUE(rel_close(pop.var, var));
  }
}

TEST(PopulationStats, UpstreamTrainUsesBatchStatisticsAndRestoresTheModel) {
  torch::manual_seed(2);
  auto mlp = small_mlp();
  auto cnn = small_cnn();
  // Mixed flags: the whole net trains except one layer, as a frozen BN would be.
  mlp->train();
  mlp[2]->eval();
  cnn->eval();
  const auto mlp_before = buffers_of(*mlp), cnn_before = buffers_of(*cnn);
  const auto mlp_batches = batches_of({0, 3, 2, 2}, {6, 4, 5});
  const auto cnn_batches = batches_of({0, 2, 5, 5}, {3, 4});
  const auto mlp_pops = measure(mlp, mlp_batches, true);
  const auto cnn_pops = measure(cnn, cnn_batches, true);

  expect_buffers(*mlp, mlp_before);
  expect_buffers(*cnn, cnn_before);
  EXPECT_TRUE(mlp->is_training());
  EXPECT_FALSE(mlp[2]->is_training());
  EXPECT_TRUE(mlp[4]->is_training());
  EXPECT_TRUE(mlp[6]->is_training());
  EXPECT_FALSE(cnn->is_training());
  for (const auto& m : cnn->modules()) EXPECT_FALSE(m->is_training());

  torch::NoGradGuard no_grad;
  // By hand: each batch normalised with its own statistics upstream, no dropout.
  auto batch_norm = [](const torch::Tensor& v, torch::nn::Module& bn) {
    auto p = bn.named_parameters(/*recurse=*/false);
    return torch::batch_norm(v, p["weight"], p["bias"], {}, {}, /*training=*/true, 0.0, 1e-5,
                             false);
  };
  std::vector<torch::Tensor> in1, in2;
  for (const auto& x : mlp_batches) {
    in1.push_back(mlp[1]->as<torch::nn::Linear>()->forward(x.flatten(1)));
    in2.push_back(
        mlp[5]->as<torch::nn::Linear>()->forward(torch::relu(batch_norm(in1.back(), *mlp[2]))));
  }
  auto [m1, v1] = channel_stats(torch::cat(in1));
  auto [m2, v2] = channel_stats(torch::cat(in2));
  EXPECT_TRUE(rel_close(mlp_pops[0].mean, m1));
  EXPECT_TRUE(rel_close(mlp_pops[0].var, v1));
  EXPECT_TRUE(rel_close(mlp_pops[1].mean, m2));
  EXPECT_TRUE(rel_close(mlp_pops[1].var, v2));
  std::vector<torch::Tensor> c2;
  for (const auto& x : cnn_batches) {
    const auto a = cnn[0]->as<torch::nn::Conv2d>()->forward(x);
    c2.push_back(cnn[3]->as<torch::nn::Conv2d>()->forward(torch::relu(batch_norm(a, *cnn[1]))));
  }
  auto [cm, cv] = channel_stats(torch::cat(c2));
  EXPECT_TRUE(rel_close(cnn_pops[1].mean, cm));
  EXPECT_TRUE(rel_close(cnn_pops[1].var, cv));
  // ... which is not what the eval network gives.
  const auto eval_pops = measure(cnn, cnn_batches, false);
  EXPECT_FALSE(rel_close(eval_pops[1].mean, cm, 1e-3));
}

TEST(PopulationStats, DmbnLayersAreMeasuredAndTheirShadowsKept) {
  torch::manual_seed(3);
  nn::DmbnLayerOptions o;
  o.channels = 4;
  o.candidates = {0.1, 0.5};
  torch::nn::Sequential net(torch::nn::Linear(3, 4), nn::Dmbn(o), torch::nn::ReLU(),
                            torch::nn::Linear(4, 2), torch::nn::BatchNorm1d(2));
  net->to(torch::kDouble);
  net->train();
  const auto batches = batches_of({0, 3}, {5, 6});
  for (const auto& b : batches) net->forward(b);  // shadows away from their initial values
  const auto before = buffers_of(*net);
  const auto pops = measure(net, batches, true);
  expect_buffers(*net, before);  // shadows, running estimates, num_batches_tracked
  ASSERT_EQ(pops.size(), 2u);
  EXPECT_EQ(pops[0].path, "1");
  EXPECT_EQ(pops[0].count, 11);
  torch::NoGradGuard no_grad;
  auto [mean, var] = channel_stats(net[0]->as<torch::nn::Linear>()->forward(torch::cat(batches)));
  EXPECT_TRUE(rel_close(pops[0].mean, mean));
  EXPECT_TRUE(rel_close(pops[0].var, var));
  // running_estimate() reads the same buffers for BN and DMBN.
  auto e = running_estimate(*net[1], "1");
  EXPECT_TRUE(e.mean.is_same(net[1]->as<nn::Dmbn>()->running_mean));
  EXPECT_TRUE(running_estimate(*net[4], "4")
                  .var.is_same(net[4]->as<torch::nn::BatchNorm1d>()->running_var));
  EXPECT_THROW(running_estimate(*net[0], "0"), Error);
}

TEST(PopulationStats, NoBatchesIsAnErrorAndTheModelIsRestored) {
  torch::manual_seed(4);
  auto mlp = small_mlp();
  mlp->train();
  try {
    measure(mlp, {});
    ADD_FAILURE() << "no batches accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no batches"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(mlp->is_training());
  // The original layers are back in their slots: the forward pass is the plain one.
  EXPECT_NE(mlp->ptr(2)->as<torch::nn::BatchNorm1d>(), nullptr);
  // A throwing forward restores too.
  const auto before = buffers_of(*mlp);
  EXPECT_THROW(
      measure_population(
          *mlp, [&](const torch::Tensor&) -> torch::Tensor { throw std::runtime_error("x"); },
          serve(batches_of({0, 3, 2, 2}, {2})), PopulationOptions{true}),
      std::runtime_error);
  EXPECT_TRUE(mlp->is_training());
  EXPECT_NE(mlp->ptr(6)->as<torch::nn::BatchNorm1d>(), nullptr);
  expect_buffers(*mlp, before);
}

}  // namespace
}  // namespace normlab::models
