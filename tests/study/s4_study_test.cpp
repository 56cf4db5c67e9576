// studies/s4_estimation_shift.toml (STUDIES.md S4): BN strategies of one seed, regime and
// dataset form one lockstep group (no frozen prefix: only the batches are shared); the
// full-batch regime takes one step per epoch; the smoke variant runs every strategy with the
// esm probe and DMBN records.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "cli/run_normlab.h"
#include "store/store.h"
#include "study/lockstep.h"
#include "study/prefix_key.h"
#include "study/runner.h"
#include "study/spec.h"
#include "study/study_dirs.h"

namespace normlab::study {
namespace {

namespace fs = std::filesystem;
using testing::fresh_dir;
using testing::runner;

Spec s4_spec() {
  return load_spec(normlab::testing::source_path("studies/s4_estimation_shift.toml"));
}

ExpandOptions smoke() {
  ExpandOptions o;
  o.smoke = true;
  return o;
}

// The value of `axis` in a run name such as "dataset=synthetic regime=full strategy=dmbn seed=0".
std::string axis_value(const std::string& run_name, const std::string& axis) {
  const auto at = run_name.find(axis + "=");
  if (at == std::string::npos) return "";
  const auto begin = at + axis.size() + 1;
  return run_name.substr(begin, run_name.find(' ', begin) - begin);
}

TEST(S4Study, StrategiesOfOneSeedAndRegimeShareOneGroup) {
  Plan plan = expand(s4_spec(), {});
  ASSERT_EQ(plan.runs.size(), 2u * 2u * 11u * 3u);  // datasets x regimes x strategies x seeds
  std::map<std::tuple<std::string, bool, int64_t>, std::set<std::string>> keys;
  std::set<std::string> all;
  std::set<std::string> strategies;
  for (const auto& r : plan.runs) {
    const Json& c = r.config;
    EXPECT_EQ(c["train"]["trainable"], Json::array()) << r.name;
    const auto point =
        std::make_tuple(c["data"]["dataset"].get<std::string>(),
                        c["train"]["full_batch"].get<bool>(), c["seed"].get<int64_t>());
    keys[point].insert(group_key(c));
    all.insert(group_key(c));
    strategies.insert(axis_value(r.name, "strategy"));
  }
  EXPECT_EQ(strategies.size(), 11u);
  ASSERT_EQ(keys.size(), 12u);
  for (const auto& [point, k] : keys) {
    EXPECT_EQ(k.size(), 1u) << std::get<0>(point) << " full=" << std::get<1>(point)
                            << " seed=" << std::get<2>(point);
  }
  EXPECT_EQ(all.size(), 12u);  // seeds, regimes and datasets never share a group

  // The full-batch regime as the seed defines it.
  for (const auto& r : plan.runs) {
    const Json& c = r.config;
    if (!c["train"]["full_batch"].get<bool>()) {
      EXPECT_EQ(c["train"]["batch_size"], 100) << r.name;
      EXPECT_DOUBLE_EQ(c["data"]["val_fraction"].get<double>(), 0.2) << r.name;
      continue;
    }
    EXPECT_EQ(c["data"]["train_from"], "test") << r.name;
    EXPECT_EQ(c["data"]["val_from"], "same") << r.name;
  }
}

TEST(S4Study, ARunWithAFrozenPrefixKeepsItsModelInTheKey) {
  Plan plan = expand(s4_spec(), smoke());
  Json a = plan.runs.front().config;
  Json b = a;
  b["model"]["norm"] = "dmbn";
  EXPECT_EQ(group_key(a), group_key(b));  // everything trains: only the batches are shared
  a["train"]["trainable"] = Json::array({"head"});
  b["train"]["trainable"] = Json::array({"head"});
  EXPECT_NE(group_key(a), group_key(b));  // the frozen prefix differs
  b["model"]["norm"] = a["model"]["norm"];
  EXPECT_EQ(group_key(a), group_key(b));
  // A recalibrated backbone is shared from one copy: its model stays in the key too.
  Json c = plan.runs.front().config;
  c["model"]["recalibrate_bn"] = true;
  Json d = c;
  d["model"]["bn_momentum"] = 0.9;
  EXPECT_NE(group_key(c), group_key(d));
  // The batches still separate groups without a prefix.
  Json e = plan.runs.front().config;
  Json f = e;
  f["train"]["batch_size"] = 7;
  EXPECT_NE(group_key(e), group_key(f));
}

const char* kFullBatch = R"toml(
[study]
name = "full_batch"
seeds = [0]

[run]
data.dataset = "synthetic"
data.synthetic = { size = 40, classes = 4, hw = 6 }
model.backbone = "mlp"
model.depth = 2
model.width = 8
model.head = { kind = "linear" }
train.epochs = 3
train.batch_size = 8

[grid]
regime = [
  { name = "full", data.train_from = "test", data.val_from = "same", train.full_batch = true },
  { name = "split", data.val_fraction = 0.25, train.full_batch = true },
  { name = "b8", data.val_fraction = 0.25 },
]
)toml";

TEST(S4Study, FullBatchTakesOneStepPerEpoch) {
  Plan plan = expand(parse_spec(kFullBatch, "full_batch.toml"), {});
  ASSERT_EQ(plan.runs.size(), 3u);
  const fs::path dir = fresh_dir("full_batch");
  StudyResult r = run_study(plan, runner(dir));
  ASSERT_EQ(r.failed, 0) << r.failures.front();
  auto db = store::Store::open((dir / "study.db").string(), {true, false});
  std::map<std::string, size_t> steps;
  for (const auto& run : db->runs()) {
    EXPECT_EQ(run.status, store::RunStatus::kComplete) << run.name << ": " << run.error;
    const auto loss = db->scalars(run.id, "step", "train/loss");
    steps[run.name] = loss.size();
    for (size_t i = 0; i < loss.size(); ++i) EXPECT_EQ(loss[i].step, static_cast<int64_t>(i));
    EXPECT_EQ(db->scalars(run.id, "epoch", "val/acc").size(), 3u) << run.name;
    EXPECT_EQ(db->scalars(run.id, "epoch", "test/acc").size(), 1u) << run.name;
  }
  EXPECT_EQ(steps["regime=full seed=0"], 3u);     // 40 test images, one batch per epoch
  EXPECT_EQ(steps["regime=split seed=0"], 3u);    // 30 training images, one batch per epoch
  EXPECT_EQ(steps["regime=b8 seed=0"], 3u * 4u);  // 30 images in batches of 8
  fs::remove_all(dir);
}

TEST(S4Study, SmokeRunsEveryStrategyWithEsmAndDmbnRecords) {
  Plan plan = expand(s4_spec(), smoke());
  ASSERT_EQ(plan.runs.size(), 10u);  // 2 regimes x 5 strategies, one seed
  const fs::path dir = fresh_dir("s4_smoke");
  StudyResult r = run_study(plan, runner(dir));
  ASSERT_EQ(r.failed, 0) << r.failures.front();
  EXPECT_EQ(r.completed, 10);
  auto db = store::Store::open((dir / "study.db").string(), {true, false});
  auto runs = db->runs();
  ASSERT_EQ(runs.size(), 10u);
  const std::vector<std::string> layers = {"features.1.1", "features.2.1", "features.3.1",
                                           "features.4.1"};
  // train/loss per regime and strategy: BN's momentum and DMBN's adoption only change the
  // running estimates, never a training step, so within a regime (same initial weights,
  // same batches) these strategies train identically.
  std::map<std::string, std::map<std::string, std::vector<store::ScalarPoint>>> losses;
  for (const auto& run : runs) {
    SCOPED_TRACE(run.name);
    EXPECT_EQ(run.status, store::RunStatus::kComplete) << run.error;
    EXPECT_EQ(db->epochs_done(run.id), 2);
    EXPECT_EQ(db->scalars(run.id, "epoch", "esm/mu_sum").size(), 2u);
    EXPECT_EQ(db->scalars(run.id, "epoch", "esm/sigma_sum").size(), 2u);
    const std::string strategy = axis_value(run.name, "strategy");
    const bool dmbn = strategy.rfind("dmbn", 0) == 0;
    const bool bfn = strategy == "bn-bfn";
    for (size_t l = 0; l < layers.size(); ++l) {
      const bool batch_norm = !bfn || l % 2 == 0;  // BN-BFN: features.2.1, .4.1 are LayerNorm
      EXPECT_EQ(db->scalars(run.id, "epoch", "esm/mu/" + layers[l]).size(), batch_norm ? 2u : 0u)
          << layers[l];
      const auto beta = db->scalars(run.id, "epoch", "dmbn/beta/" + layers[l]);
      ASSERT_EQ(beta.size(), dmbn ? 2u : 0u) << layers[l];
      for (const auto& b : beta) {
        EXPECT_GE(b.value, 0.1 - 1e-12);
        EXPECT_LE(b.value, 0.9 + 1e-12);
      }
    }
    const std::string regime = axis_value(run.name, "regime");
    if (!bfn) losses[regime][strategy] = db->scalars(run.id, "step", "train/loss");
  }
  ASSERT_EQ(losses.size(), 2u);
  for (const auto& [regime, by_strategy] : losses) {
    ASSERT_EQ(by_strategy.size(), 4u) << regime;
    const auto& ref = by_strategy.at("bn0.1");
    ASSERT_FALSE(ref.empty());
    for (const auto& [strategy, loss] : by_strategy) {
      ASSERT_EQ(loss.size(), ref.size()) << regime << " " << strategy;
      for (size_t i = 0; i < loss.size(); ++i) {
        EXPECT_NEAR(loss[i].value, ref[i].value, 1e-5 * std::max(1.0, std::abs(ref[i].value)))
            << regime << " " << strategy << " step " << i;
      }
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace normlab::study
