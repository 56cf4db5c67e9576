// The smoothness probe (Santurkar et al. 2018): its three numbers recomputed independently from
// their definitions at the weights it measured, and training unchanged by it.
#include <gtest/gtest.h>

#include <cmath>

#include "probe/registry.h"
#include "probe_fixture.h"
#include "train/guards.h"

namespace normlab::probe {
namespace {
using namespace testing;

// The model of the probe tests without dropout, so that train-mode losses can be recomputed.
models::Classifier model_without_dropout() { return tiny_model(0.0); }

// The first batch, and the whole model state after the first step.
class FirstStep : public train::Observer {
 public:
  void after_step(const train::StepContext& ctx) override {
    if (ctx.global_step != 0) return;
    x = ctx.input.clone();
    y = ctx.y.clone();
    for (const auto& p : ctx.model->named_parameters()) state[p.key()] = p.value().detach().clone();
    for (const auto& b : ctx.model->named_buffers()) state[b.key()] = b.value().detach().clone();
    lr = ctx.optimizer->param_groups().front().options().get_lr();
  }
  torch::Tensor x, y;
  std::map<std::string, torch::Tensor> state;
  double lr = 0;
};

struct Trained {
  store::EpochRecords records;
  FirstStep first;
  std::vector<torch::Tensor> final_weights;
};

// One epoch, with or without the probe (placed before FirstStep, as the engine orders
// probes: FirstStep sees the weights the probe restored).
Trained train(bool probe, const nlohmann::json& options) {
  apply_seed(0);
  train::TrainOptions o;
  o.epochs = 1;
  o.progress = false;
  o.optimizer.name = "sgd";
  o.optimizer.lr = 0.05;
  Trained t;
  train::Trainer trainer(model_without_dropout(), o, torch::kCPU);
  std::unique_ptr<train::Observer> observer;
  if (probe) {
    const ProbeInfo& info = find_probe("smoothness");
    nlohmann::json merged = info.defaults;
    merged.update(options);
    observer = info.make(
        merged, ProbeSetup{trainer.model().ptr().get(), &trainer.trainable(), {}, 0, "test", ""});
    trainer.add_observer(observer.get());
  }
  trainer.add_observer(&t.first);
  data::Batcher b(synthetic(64), batch_opts(true), 0);
  normlab::testing::train_epoch(trainer, b, 0);
  t.records = trainer.recorder().flush();
  for (const auto& p : trainer.model()->parameters()) t.final_weights.push_back(p.detach().clone());
  // BN running statistics too: train-mode forwards of the probe would move them.
  for (const auto& b : trainer.model()->buffers()) t.final_weights.push_back(b.detach().clone());
  return t;
}

TEST(Smoothness, MatchesItsDefinitionsAndLeavesTrainingUnchanged) {
  const nlohmann::json options = {{"every", 2}, {"multipliers", {0.5, 4.0}}, {"points", 3}};
  Trained with = train(true, options);
  Trained without = train(false, options);
  ASSERT_EQ(with.final_weights.size(), without.final_weights.size());
  for (size_t k = 0; k < with.final_weights.size(); ++k) {
    EXPECT_TRUE(torch::equal(with.final_weights[k], without.final_weights[k])) << k;
  }
  const auto* range = find_point(with.records.step_scalars, "smoothness/loss_range", 0);
  const auto* change = find_point(with.records.step_scalars, "smoothness/grad_change", 0);
  const auto* beta = find_point(with.records.step_scalars, "smoothness/beta", 0);
  ASSERT_TRUE(range && change && beta);
  EXPECT_NE(find_point(with.records.step_scalars, "smoothness/beta", 2), nullptr);
  EXPECT_EQ(find_point(with.records.step_scalars, "smoothness/beta", 1), nullptr);

  // Recomputed: a fresh model with the state after step 0, train mode, on the first batch.
  auto model = model_without_dropout();
  {
    torch::NoGradGuard ng;
    for (auto& p : model->named_parameters()) p.value().copy_(with.first.state.at(p.key()));
  }
  auto load_buffers = [&] {
    torch::NoGradGuard ng;
    for (auto& b : model->named_buffers()) b.value().copy_(with.first.state.at(b.key()));
  };
  model->train();
  std::vector<torch::Tensor> params = model->parameters();
  auto loss_grad = [&] {
    load_buffers();
    model->zero_grad();
    torch::Tensor loss =
        torch::nn::functional::cross_entropy(model->forward(with.first.x), with.first.y);
    loss.backward();
    std::vector<torch::Tensor> g;
    for (const auto& p : params) g.push_back(p.grad().clone());
    return std::make_pair(loss.item<double>(), g);
  };
  auto [l0, g0] = loss_grad();
  std::vector<torch::Tensor> w0;
  for (const auto& p : params) w0.push_back(p.detach().clone());
  double lo = l0, hi = l0, max_change = 0, max_beta = 0;
  for (double m : {0.5, 2.25, 4.0}) {
    double moved = 0;
    {
      torch::NoGradGuard ng;
      for (size_t k = 0; k < params.size(); ++k) {
        params[k].copy_(w0[k] - m * with.first.lr * g0[k]);
        moved += (m * with.first.lr * g0[k]).pow(2).sum().item<double>();
      }
    }
    auto [l, g] = loss_grad();
    double sq = 0;
    for (size_t k = 0; k < params.size(); ++k) sq += (g[k] - g0[k]).pow(2).sum().item<double>();
    lo = std::min(lo, l);
    hi = std::max(hi, l);
    max_change = std::max(max_change, std::sqrt(sq));
    max_beta = std::max(max_beta, std::sqrt(sq) / std::sqrt(moved));
  }
  EXPECT_NEAR(range->value, hi - lo, 1e-4 * std::max(1.0, hi - lo));
  EXPECT_NEAR(change->value, max_change, 1e-4 * max_change);
  EXPECT_NEAR(beta->value, max_beta, 1e-4 * max_beta);
  EXPECT_GT(range->value, 0);
}

}  // namespace
}  // namespace normlab::probe
