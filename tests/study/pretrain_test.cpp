// Pretraining per configuration: a grid point's pretrain.<key> settings (S2: a source model
// with BatchNorm and one without), optionally one per seed; each distinct pretraining trains
// once, runs start from theirs, and a failed one fails only the runs that needed it.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/error.h"
#include "core/files.h"
#include "error_of.h"
#include "io/state_dict.h"
#include "store/store.h"
#include "study/run_paths.h"
#include "study/runner.h"
#include "study/spec.h"
#include "study_dirs.h"

namespace normlab::study {
namespace {

using normlab::testing::error_of;

const char* kSource = R"toml(
[study]
name = "source models"
seeds = [0, 1]
pretrain_per_seed = true

[pretrain]
data = { dataset = "synthetic", synthetic = { size = 96, classes = 6, hw = 8 }, classes = [0, 1, 2], val_fraction = 0.25 }
model = { backbone = "small_cnn", width = 4, depth = 2, head = { hidden = 8 } }
train.epochs = 1

[run]
data = { dataset = "synthetic", synthetic = { size = 96, classes = 6, hw = 8 }, classes = [3, 4, 5], val_fraction = 0.25 }
model = { backbone = "small_cnn", width = 4, depth = 2, weights = "pretrain", weights_skip = ["head"], head = { hidden = 8 } }
train = { epochs = 1, batch_size = 16, trainable = ["head"] }

[grid]
source = [
  { name = "bn", model.norm = "bn", pretrain.model.norm = "bn" },
  { name = "none", model.norm = "none", pretrain.model.norm = "none", pretrain.train.optimizer.lr = 1e-2 },
]
)toml";

Plan plan_of(const std::string& text, std::vector<std::pair<std::string, std::string>> sets = {}) {
  ExpandOptions o;
  o.sets = std::move(sets);
  return expand(parse_spec(text, "source.toml"), o);
}

std::string with(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

TEST(Pretrain, EachDistinctPretrainingIsPlannedOnceAndRunsFindTheirs) {
  Plan plan = plan_of(kSource);
  ASSERT_EQ(plan.runs.size(), 4u);
  ASSERT_EQ(plan.pretrains.size(), 4u);  // 2 source models x 2 seeds
  std::map<std::string, const RunPlan*> by_ref;
  for (const auto& p : plan.pretrains) {
    by_ref["pretrain:" + sha256_hex(canonical_text(p.config)).substr(0, 16)] = &p;
    EXPECT_EQ(p.role, "pretrain");
    EXPECT_EQ(p.config["data"]["classes"], Json::parse("[0, 1, 2]"));
  }
  for (const auto& r : plan.runs) {
    SCOPED_TRACE(r.name);
    const auto it = by_ref.find(r.config["model"]["weights"].get<std::string>());
    ASSERT_NE(it, by_ref.end());
    const Json& pre = it->second->config;
    EXPECT_EQ(pre["model"]["norm"], r.config["model"]["norm"]);
    EXPECT_EQ(pre["seed"], r.config["seed"]);
    EXPECT_EQ(it->second->name, "pretrain norm=" + r.config["model"]["norm"].get<std::string>() +
                                    (pre["model"]["norm"] == "none" ? " lr=0.01" : "") +
                                    " seed=" + std::to_string(r.config["seed"].get<int64_t>()));
  }
  EXPECT_EQ(plan.pretrains[1].sources.at("model.norm"), "[grid] source=none");
  // Shared across seeds without pretrain_per_seed: one per source model.
  Plan shared = plan_of(with(kSource, "pretrain_per_seed = true", "pretrain_per_seed = false"));
  ASSERT_EQ(shared.pretrains.size(), 2u);
  EXPECT_EQ(shared.pretrains[0].name, "pretrain norm=bn");
  EXPECT_EQ(shared.pretrains[0].config["seed"], 0);
  // A pretrain.<key> axis.
  Plan axis = plan_of(with(kSource, "[grid]\n", "[grid]\n\"pretrain.train.epochs\" = [1, 2]\n"));
  EXPECT_EQ(axis.pretrains.size(), 8u);
}

TEST(Pretrain, PretrainSettingsAreCheckedAndSetsConflictNamingBoth) {
  std::string e = error_of([] {
    plan_of(with(kSource, "pretrain.model.norm = \"bn\"", "pretrain.model.nrom = \"bn\""));
  });
  EXPECT_NE(e.find("model.nrom"), std::string::npos) << e;
  EXPECT_NE(e.find("source=bn"), std::string::npos) << e;
  e = error_of([] { plan_of(kSource, {{"model.weights", ""}}); });
  EXPECT_NE(e.find("pretrain keys"), std::string::npos) << e;
  e = error_of([] { plan_of(kSource, {{"pretrain.model.norm", "ln"}}); });
  EXPECT_NE(e.find("--set pretrain.model.norm=ln"), std::string::npos) << e;
  EXPECT_NE(e.find("source="), std::string::npos) << e;
  // A key no point sets applies to every pretraining.
  Plan two = plan_of(kSource, {{"pretrain.train.epochs", "2"}});
  for (const auto& p : two.pretrains) EXPECT_EQ(p.config["train"]["epochs"], 2) << p.name;
}

TEST(Pretrain, RunsStartFromTheirOwnPretrainingAndAFailedOneFailsOnlyItsRuns) {
  const auto dir = testing::fresh_dir("pretrain_per_config");
  // The source without BN cannot find its data: its runs fail, the BN source's runs go on.
  Plan plan = plan_of(with(kSource, "pretrain.train.optimizer.lr = 1e-2",
                           "pretrain.data.dataset = \"cifar10\", "
                           "pretrain.data.path = \"/nonexistent/normlab\""));
  StudyResult result = run_study(plan, testing::runner(dir));
  auto db = store::Store::open((dir / "study.db").string(), {true, false});
  std::map<std::string, store::RunRecord> runs;
  for (const auto& r : db->runs()) runs[r.name] = r;
  ASSERT_EQ(runs.size(), 8u);
  for (const auto& p : plan.pretrains) {
    const bool none = p.config["model"]["norm"] == "none";
    EXPECT_EQ(runs.at(p.name).status,
              none ? store::RunStatus::kFailed : store::RunStatus::kComplete)
        << p.name;
  }
  for (const auto& r : plan.runs) {
    SCOPED_TRACE(r.name);
    const auto& record = runs.at(r.name);
    if (r.config["model"]["norm"] == "none") {
      EXPECT_EQ(record.status, store::RunStatus::kFailed);
      EXPECT_NE(record.error.find("its pretraining"), std::string::npos) << record.error;
      continue;
    }
    ASSERT_EQ(record.status, store::RunStatus::kComplete) << record.error;
    // Only the head trained: the backbone is the pretraining's, bit for bit.
    const std::string ref = r.config["model"]["weights"].get<std::string>().substr(9);
    const auto pre = io::load_state_dict(dir.string() + "/runs/" + ref + "/model.safetensors");
    const auto mine =
        io::load_state_dict(RunPaths::of(dir.string(), record.config_hash).final_weights());
    int64_t compared = 0;
    for (const auto& [name, t] : pre.items) {
      if (name.rfind("features.", 0) != 0 || name.find("running") != std::string::npos ||
          name.find("num_batches") != std::string::npos) {
        continue;  // the head is new; BN statistics of the frozen trunk update in "update" mode
      }
      ASSERT_NE(mine.find(name), nullptr) << name;
      EXPECT_TRUE(torch::equal(t, *mine.find(name))) << name;
      ++compared;
    }
    EXPECT_GT(compared, 0);
  }
  EXPECT_EQ(result.failed, 4);  // the non-BN source of each seed and its run
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace normlab::study
