// DMBN's epoch-end adoption (train/dmbn_adopter.h, seed 004 eq. 4.1): each DMBN layer adopts
// the candidate whose shadow running mean is closest to the population mean of its input,
// jointly (one pass) or front to back (layer l measured with layers < l already switched);
// records dmbn/beta/<layer> and dmbn/esm_mu/<layer>. Population statistics are recomputed
// here by hand (tests/norm_population.h).
#include "train/dmbn_adopter.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/model.h"
#include "norm_population.h"
#include "train/recorder.h"

namespace normlab::train {
namespace {

using normlab::testing::channel_stats;
using normlab::testing::FakeEvalBatches;
using normlab::testing::norm_inputs;

const std::vector<double> kCandidates = {0.1, 0.3, 0.5, 0.7, 0.9};
const std::vector<std::string> kLayers = {"features.1.1", "features.2.1", "features.3.1"};

// A 3-block DMBN MLP whose shadows have seen drifting batches and whose running estimates are
// random; the same seed gives the same model.
models::Classifier trained_dmbn_mlp(uint64_t seed) {
  torch::manual_seed(seed);
  models::ModelOptions m;
  m.backbone = "mlp";
  m.in_channels = 1;
  m.input_hw = 5;
  m.num_classes = 3;
  m.width = 6;
  m.depth = 3;
  m.norm = "dmbn";
  m.head.kind = "linear";
  m.norm_options.dmbn_candidates = kCandidates;
  auto model = models::build_model(m);
  model->train();
  torch::NoGradGuard no_grad;
  for (int64_t i = 0; i < 6; ++i) {
    model->forward((1.0 + 0.3 * i) * torch::randn({16, 1, 5, 5}) + 0.5 * i - 1.0);
  }
  normlab::testing::randomize_running_estimates(*model);
  return model;
}

std::vector<torch::Tensor> eval_images() {
  torch::manual_seed(99);
  return {torch::randn({20, 1, 5, 5}) + 0.8, torch::randn({13, 1, 5, 5}) + 0.8};
}

nn::DmbnImpl& layer(models::Classifier& model, const std::string& path) {
  return *model->named_modules()[path]->as<nn::DmbnImpl>();
}

// ESM_mu of every candidate of `layer` against the population mean of `input`.
torch::Tensor candidate_esm(nn::DmbnImpl& layer, const torch::Tensor& input) {
  const torch::Tensor mu = channel_stats(input).first;
  return (layer.shadow_mean.to(torch::kDouble) - mu.unsqueeze(0)).norm(2, {1});
}

struct Choice {
  int64_t k = 0;
  double esm = 0;
};

Choice best_of(const torch::Tensor& esm) {
  const int64_t k = esm.argmin().item<int64_t>();
  return {k, esm[k].item<double>()};
}

store::EpochRecords adopt(DmbnAdopter& adopter, models::Classifier& model, FakeEvalBatches& eval,
                          int64_t epoch) {
  Recorder recorder;
  adopter.after_train_epoch(EpochContext{epoch, model.get(), nullptr, &recorder, &eval});
  return recorder.flush();
}

const store::ScalarPoint* point(const store::EpochRecords& rec, const std::string& name) {
  for (const auto& p : rec.epoch_scalars) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

nn::DmbnOptions options(const std::string& order, const std::string& shadows) {
  nn::DmbnOptions o;
  o.order = order;
  o.shadows = shadows;
  return o;
}

TEST(DmbnAdopter, JointAdoptsEachLayersArgminFromOnePass) {
  auto model = trained_dmbn_mlp(0);
  FakeEvalBatches eval(eval_images());
  ASSERT_EQ(dmbn_layers(*model).size(), 3u);
  // By hand, before adopting: every layer's population under the network as it is.
  const auto inputs = norm_inputs(*model, eval.images());
  std::map<std::string, Choice> want;
  std::map<std::string, torch::Tensor> mean_before, var_before;
  std::set<int64_t> chosen;
  for (const auto& path : kLayers) {
    want[path] = best_of(candidate_esm(layer(model, path), inputs.at(path)));
    chosen.insert(want[path].k);
    mean_before[path] = layer(model, path).shadow_mean.clone();
    var_before[path] = layer(model, path).shadow_var.clone();
  }
  EXPECT_GT(chosen.size(), 1u) << "the layers should not all pick the same beta";

  DmbnAdopter adopter(*model, options("joint", "restart"));
  const auto rec = adopt(adopter, model, eval, 3);
  EXPECT_EQ(eval.passes["val"], 1);
  for (const auto& path : kLayers) {
    SCOPED_TRACE(path);
    const int64_t k = want[path].k;
    nn::DmbnImpl& d = layer(model, path);
    EXPECT_TRUE(torch::equal(d.running_mean, mean_before[path][k]));
    EXPECT_TRUE(torch::equal(d.running_var, var_before[path][k]));
    // restart: every shadow continues from the winner.
    for (int64_t j = 0; j < static_cast<int64_t>(kCandidates.size()); ++j) {
      EXPECT_TRUE(torch::equal(d.shadow_mean[j], mean_before[path][k])) << j;
    }
    const auto* beta = point(rec, "dmbn/beta/" + path);
    ASSERT_NE(beta, nullptr);
    EXPECT_EQ(beta->step, 3);
    EXPECT_EQ(beta->value, kCandidates[k]);  // the study's value, not its float32 copy
    const auto* esm = point(rec, "dmbn/esm_mu/" + path);
    ASSERT_NE(esm, nullptr);
    EXPECT_NEAR(esm->value, want[path].esm, 1e-9 * std::max(1.0, want[path].esm));
  }
  EXPECT_EQ(rec.epoch_scalars.size(), 2 * kLayers.size());
}

TEST(DmbnAdopter, SequentialMeasuresEachLayerWithTheEarlierOnesSwitched) {
  auto model = trained_dmbn_mlp(1);
  auto by_hand = trained_dmbn_mlp(1);  // the same model, adopted here step by step
  FakeEvalBatches eval(eval_images());
  const auto joint_inputs = norm_inputs(*by_hand, eval.images());
  std::map<std::string, Choice> want;
  std::map<std::string, torch::Tensor> shadows_before;
  for (const auto& path : kLayers) {
    nn::DmbnImpl& d = layer(by_hand, path);
    shadows_before[path] = d.shadow_mean.clone();
    want[path] = best_of(candidate_esm(d, norm_inputs(*by_hand, eval.images()).at(path)));
    torch::NoGradGuard no_grad;
    d.running_mean.copy_(d.shadow_mean[want[path].k]);
    d.running_var.copy_(d.shadow_var[want[path].k]);
  }
  // Layer 2's population depends on layer 1's adopted estimate: the joint reading differs.
  const double joint_esm2 =
      best_of(candidate_esm(layer(model, kLayers[1]), joint_inputs.at(kLayers[1]))).esm;
  EXPECT_GT(std::abs(joint_esm2 - want[kLayers[1]].esm), 1e-4);

  DmbnAdopter adopter(*model, options("sequential", "continue"));
  const auto rec = adopt(adopter, model, eval, 0);
  EXPECT_EQ(eval.passes["val"], 3);  // one pass per DMBN layer
  for (const auto& path : kLayers) {
    SCOPED_TRACE(path);
    EXPECT_TRUE(torch::equal(layer(model, path).running_mean, layer(by_hand, path).running_mean));
    EXPECT_TRUE(torch::equal(layer(model, path).running_var, layer(by_hand, path).running_var));
    EXPECT_TRUE(torch::equal(layer(model, path).shadow_mean, shadows_before[path]));  // continue
    const auto* beta = point(rec, "dmbn/beta/" + path);
    ASSERT_NE(beta, nullptr);
    EXPECT_EQ(beta->value, kCandidates[want[path].k]);
    const auto* esm = point(rec, "dmbn/esm_mu/" + path);
    ASSERT_NE(esm, nullptr);
    EXPECT_NEAR(esm->value, want[path].esm, 1e-9 * std::max(1.0, want[path].esm));
  }
}

TEST(DmbnAdopter, MeasuresOnItsSplitAndRefusesModelsWithoutDmbn) {
  auto model = trained_dmbn_mlp(2);
  FakeEvalBatches eval(eval_images(), {"val", "test"});
  nn::DmbnOptions o;
  o.split = "test";
  DmbnAdopter adopter(*model, o);
  adopt(adopter, model, eval, 0);
  EXPECT_EQ(eval.passes["test"], 1);
  EXPECT_EQ(eval.passes.count("val"), 0u);

  FakeEvalBatches only_val(eval_images(), {"val"});
  try {
    adopt(adopter, model, only_val, 0);
    ADD_FAILURE() << "measured a split the run does not have";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'test'"), std::string::npos) << e.what();
  }

  models::ModelOptions bn;
  bn.backbone = "mlp";
  auto plain = models::build_model(bn);
  EXPECT_TRUE(dmbn_layers(*plain).empty());
  try {
    DmbnAdopter none(*plain, nn::DmbnOptions{});
    ADD_FAILURE() << "accepted a model without DMBN";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dmbn"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace normlab::train
