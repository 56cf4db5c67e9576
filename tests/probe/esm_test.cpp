// The esm probe (BatchNorm estimation shift) through its Observer, on engine-style evaluation
// batches: per layer ESM_mu = ||running_mean - mu_pop||_2 and ESM_sigma =
// ||sqrt(running_var) - sqrt(var_pop)||_2 and their sums, against population statistics
// computed by hand (small MLP, small CNN) and against PyTorch (tests/fixtures/probe/esm_mlp.pt,
// scripts/gen_probe_fixtures.py).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/model.h"
#include "norm_population.h"
#include "probe/registry.h"
#include "train/estimation_shift.h"
#include "train/recorder.h"

namespace normlab::probe {
namespace {

using normlab::testing::FakeEvalBatches;

models::Classifier small_mlp(const std::string& head = "mlp") {
  models::ModelOptions m;
  m.backbone = "mlp";
  m.in_channels = 1;
  m.input_hw = 6;
  m.num_classes = 3;
  m.width = 8;
  m.depth = 3;
  m.head.kind = head;
  m.head.hidden = 5;
  return models::build_model(m);
}

models::Classifier small_cnn() {
  models::ModelOptions m;
  m.backbone = "small_cnn";
  m.in_channels = 1;
  m.input_hw = 8;
  m.num_classes = 3;
  m.width = 4;
  m.depth = 3;
  m.head.kind = "linear";
  return models::build_model(m);
}

std::vector<torch::Tensor> eval_images(int64_t hw, std::vector<int64_t> sizes) {
  std::vector<torch::Tensor> out;
  for (auto n : sizes) out.push_back(0.9 * torch::randn({n, 1, hw, hw}) + 0.2);
  return out;
}

std::unique_ptr<train::Observer> make_esm(models::ClassifierImpl& model, const Json& options) {
  const ProbeInfo& info = find_probe("esm");
  Json merged = info.defaults;
  merged.update(options);
  merged["enabled"] = true;
  info.check(merged, "test");
  info.check_model(merged, model, "test");
  return info.make(merged, ProbeSetup{&model, nullptr, {}, 0, "test", ""});
}

// The probe's records after on_epoch_end of `epoch`.
store::EpochRecords epoch_end(train::Observer& probe, models::ClassifierImpl& model,
                              train::EvalBatches& eval, int64_t epoch) {
  train::Recorder recorder;
  probe.on_epoch_end(train::EpochContext{epoch, &model, nullptr, &recorder, &eval});
  return recorder.flush();
}

const store::ScalarPoint* point(const store::EpochRecords& rec, const std::string& name) {
  for (const auto& p : rec.epoch_scalars) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

struct Expected {
  std::map<std::string, double> mu, sigma;
  double mu_sum = 0, sigma_sum = 0;
};

// ESM of every norm layer with running estimates, from the inputs computed by hand.
Expected expected_esm(models::ClassifierImpl& model, const std::vector<torch::Tensor>& images,
                      bool upstream_train = false) {
  Expected e;
  auto modules = model.named_modules();
  for (const auto& [path, input] : normlab::testing::norm_inputs(model, images, upstream_train)) {
    auto buffers = modules[path]->named_buffers(/*recurse=*/false);
    if (!buffers.contains("running_mean")) continue;
    auto [mean, var] = normlab::testing::channel_stats(input);
    e.mu[path] = (buffers["running_mean"].to(torch::kDouble) - mean).norm().item<double>();
    e.sigma[path] =
        (buffers["running_var"].to(torch::kDouble).sqrt() - var.sqrt()).norm().item<double>();
    e.mu_sum += e.mu[path];
    e.sigma_sum += e.sigma[path];
  }
  return e;
}

void expect_records(const store::EpochRecords& rec, const Expected& e, int64_t epoch,
                    double tol = 1e-9) {
  auto near = [&](const std::string& name, double want) {
    const auto* p = point(rec, name);
    ASSERT_NE(p, nullptr) << name;
    EXPECT_EQ(p->step, epoch) << name;
    EXPECT_NEAR(p->value, want, tol * std::max(1.0, std::abs(want))) << name;
  };
  ASSERT_FALSE(e.mu.empty());
  for (const auto& [path, v] : e.mu) near("esm/mu/" + path, v);
  for (const auto& [path, v] : e.sigma) near("esm/sigma/" + path, v);
  near("esm/mu_sum", e.mu_sum);
  near("esm/sigma_sum", e.sigma_sum);
  EXPECT_EQ(rec.epoch_scalars.size(), 2 * e.mu.size() + 2);
}

TEST(EsmProbe, MlpShiftPerLayerAndSumsFromTheEvalNetwork) {
  torch::manual_seed(0);
  auto model = small_mlp();
  normlab::testing::randomize_running_estimates(*model);
  model->train();  // the probe runs after the epoch's training; it measures in eval mode
  FakeEvalBatches eval(eval_images(6, {16, 16, 9}));
  auto probe = make_esm(*model, Json::object());
  const auto rec = epoch_end(*probe, *model, eval, 0);
  const Expected e = expected_esm(*model, eval.images());
  ASSERT_EQ(e.mu.size(), 4u);  // features.1.1 .. features.3.1 and head.1
  EXPECT_EQ(e.mu.count("head.1"), 1u);
  expect_records(rec, e, 0);
  EXPECT_EQ(eval.passes["val"], 1);  // one pass over the split per measurement
  EXPECT_EQ(eval.stages, std::vector<int64_t>{0});
  EXPECT_TRUE(model->is_training());
}

TEST(EsmProbe, CnnShiftPerLayerAndSums) {
  torch::manual_seed(1);
  auto model = small_cnn();
  normlab::testing::randomize_running_estimates(*model);
  FakeEvalBatches eval(eval_images(8, {7, 10}), {"val", "test"});
  auto probe = make_esm(*model, {{"split", "test"}});
  const auto rec = epoch_end(*probe, *model, eval, 4);
  const Expected e = expected_esm(*model, eval.images());
  ASSERT_EQ(e.mu.size(), 3u);
  expect_records(rec, e, 4);
  EXPECT_EQ(eval.passes["test"], 1);
  EXPECT_EQ(eval.passes.count("val"), 0u);
}

TEST(EsmProbe, UpstreamTrainMeasuresWithBatchStatisticsUpstream) {
  torch::manual_seed(2);
  auto model = small_cnn();
  normlab::testing::randomize_running_estimates(*model);
  FakeEvalBatches eval(eval_images(8, {6, 9}));
  auto probe = make_esm(*model, {{"upstream", "train"}});
  const auto rec = epoch_end(*probe, *model, eval, 0);
  const Expected train_up = expected_esm(*model, eval.images(), true);
  expect_records(rec, train_up, 0);
  // The first layer sees the same either way; deeper ones do not.
  const Expected eval_up = expected_esm(*model, eval.images(), false);
  EXPECT_NEAR(train_up.mu.at("features.0.1"), eval_up.mu.at("features.0.1"), 1e-9);
  EXPECT_GT(std::abs(train_up.mu.at("features.2.1") - eval_up.mu.at("features.2.1")), 1e-3);
}

TEST(EsmProbe, EveryNEpochsAndOnlyBatchNormLayers) {
  torch::manual_seed(3);
  models::ModelOptions m;
  m.backbone = "mlp";
  m.in_channels = 1;
  m.input_hw = 6;
  m.num_classes = 3;
  m.width = 8;
  m.depth = 3;
  m.head.kind = "linear";
  m.norm_overrides = {{"features.2.1", "ln"}};  // not measured: no running estimates
  auto model = models::build_model(m);
  normlab::testing::randomize_running_estimates(*model);
  FakeEvalBatches eval(eval_images(6, {12}));
  auto probe = make_esm(*model, {{"every", 2}});
  for (int64_t epoch = 0; epoch < 4; ++epoch) {
    const auto rec = epoch_end(*probe, *model, eval, epoch);
    if (epoch % 2 == 0) {  // epochs 1 and 3 (1-based) are skipped
      EXPECT_TRUE(rec.epoch_scalars.empty()) << epoch;
      continue;
    }
    const Expected e = expected_esm(*model, eval.images());
    ASSERT_EQ(e.mu.size(), 2u);
    expect_records(rec, e, epoch);
    EXPECT_EQ(point(rec, "esm/mu/features.2.1"), nullptr);
  }
  EXPECT_EQ(eval.passes["val"], 2);
}

TEST(EsmProbe, RefusesMissingSplitsBadOptionsAndModelsWithoutBatchNorm) {
  auto model = small_mlp();
  FakeEvalBatches eval(eval_images(6, {4}), {"test"});
  auto probe = make_esm(*model, Json::object());  // split "val", which this run lacks
  try {
    epoch_end(*probe, *model, eval, 0);
    ADD_FAILURE() << "measured a split the run does not have";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'val'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_esm(*model, {{"split", "train"}}), Error);
  EXPECT_THROW(make_esm(*model, {{"every", 0}}), Error);
  EXPECT_THROW(make_esm(*model, {{"upstream", "batch"}}), Error);

  models::ModelOptions m;
  m.backbone = "mlp";
  m.norm = "ln";
  m.head.norm = "ln";
  auto no_bn = models::build_model(m);
  try {
    make_esm(*no_bn, Json::object());
    ADD_FAILURE() << "accepted a model without BatchNorm";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("probe.esm"), std::string::npos) << e.what();
  }
}

TEST(EstimationShift, NormsOfTheDifferencesOfMeansAndStandardDeviations) {
  models::LayerPopulation pop;
  pop.mean = torch::tensor({1.0, -2.0, 0.5}, torch::kDouble);
  pop.var = torch::tensor({4.0, 1.0, 0.25}, torch::kDouble);
  const auto s = train::estimation_shift(torch::tensor({1.0f, 1.0f, 0.5f}),
                                         torch::tensor({1.0f, 9.0f, 0.25f}), pop);
  EXPECT_NEAR(s.mu.item<double>(), 3.0, 1e-12);                      // |1 - (-2)|
  EXPECT_NEAR(s.sigma.item<double>(), std::sqrt(1.0 + 4.0), 1e-12);  // (1 - 2), (3 - 1)
}

// tests/fixtures/probe/esm_mlp.pt (scripts/gen_probe_fixtures.py).
c10::impl::GenericDict load_fixture() {
  std::filesystem::path dir =
      std::getenv("NORMLAB_FIXTURES") != nullptr
          ? std::filesystem::path(std::getenv("NORMLAB_FIXTURES"))
          : std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures";
  const auto path = dir / "probe" / "esm_mlp.pt";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open fixture " + path.string());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toGenericDict();
}

TEST(EsmProbe, MatchesPyTorchOnATrainedMlp) {
  const auto f = load_fixture();
  auto tensor = [&](const std::string& key) { return f.at(key).toTensor(); };
  models::ModelOptions m;
  m.backbone = "mlp";
  m.in_channels = 1;
  m.input_hw = 6;
  m.num_classes = 4;
  m.width = 16;
  m.depth = 3;
  m.head.kind = "linear";
  auto model = models::build_model(m);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) p.value().copy_(tensor("model." + p.key()));
    for (auto& b : model->named_buffers()) b.value().copy_(tensor("model." + b.key()));
  }
  model->train();
  auto sizes = tensor("batch_sizes");
  std::vector<int64_t> split(sizes.data_ptr<int64_t>(), sizes.data_ptr<int64_t>() + sizes.numel());
  FakeEvalBatches eval(tensor("x").split_with_sizes(split));
  auto probe = make_esm(*model, Json::object());
  const auto rec = epoch_end(*probe, *model, eval, 0);
  auto near = [&](const std::string& name, const std::string& key) {
    const auto* p = point(rec, name);
    ASSERT_NE(p, nullptr) << name;
    const double want = tensor(key).item<double>();
    EXPECT_NEAR(p->value, want, 1e-6 * std::max(1.0, want)) << name;
  };
  auto layers = tensor("layers");
  ASSERT_EQ(layers.numel(), 3);
  for (int64_t i = 0; i < layers.numel(); ++i) {
    const std::string layer = "features." + std::to_string(layers[i].item<int64_t>()) + ".1";
    near("esm/mu/" + layer, "esm_mu." + layer);
    near("esm/sigma/" + layer, "esm_sigma." + layer);
    // The population statistics themselves, as the probe measures them.
    auto pops = train::split_population(
        train::EpochContext{0, model.get(), nullptr, nullptr, &eval}, "val", {}, "test");
    for (const auto& p : pops) {
      if (p.path != layer) continue;
      EXPECT_TRUE(torch::allclose(p.mean, tensor("pop_mean." + layer), 1e-6, 1e-6)) << layer;
      EXPECT_TRUE(torch::allclose(p.var, tensor("pop_var." + layer), 1e-6, 1e-6)) << layer;
    }
  }
  near("esm/mu_sum", "esm_mu_sum");
  near("esm/sigma_sum", "esm_sigma_sum");
  EXPECT_EQ(rec.epoch_scalars.size(), 8u);
}

}  // namespace
}  // namespace normlab::probe
