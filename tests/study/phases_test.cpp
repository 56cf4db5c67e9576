// Phases within a run (study/phases.h): parsing and checks, train.epochs as their sum, the
// frozen prefix a phased run can share, and through the engine what trains in each phase
// (the probes follow the phase's trainable set).
#include "study/phases.h"

#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "error_of.h"
#include "store/store.h"
#include "study/run_options.h"
#include "study/runner.h"
#include "study/spec.h"
#include "study_dirs.h"

namespace normlab::study {
namespace {

using normlab::testing::error_of;

const char* kPhased = R"toml(
[study]
name = "phased"
seeds = [0]

[run]
data = { dataset = "synthetic", synthetic = { size = 64, classes = 3, hw = 8 }, val_fraction = 0.25 }
model = { backbone = "small_cnn", width = 4, depth = 2, head = { hidden = 8 } }
train = { batch_size = 16, optimizer = { name = "adam", lr = 1e-3 } }
probe.update_ratio = { enabled = true }

[[run.phases]]
epochs = 2
trainable = ["head"]

[[run.phases]]
epochs = 1
trainable = []
optimizer = { lr = 1e-4 }
keep_state = true
)toml";

Plan plan_of(const std::string& text, std::vector<std::pair<std::string, std::string>> sets = {}) {
  ExpandOptions o;
  o.sets = std::move(sets);
  return expand(parse_spec(text, "phased.toml"), o);
}

TEST(Phases, EachPhaseIsTheRunsTrainTableWithItsKeysOver) {
  Plan plan = plan_of(kPhased);
  ASSERT_EQ(plan.runs.size(), 1u);
  const RunPlan& r = plan.runs[0];
  EXPECT_EQ(r.config["train"]["epochs"], 3);
  EXPECT_EQ(r.sources.at("train.epochs"), "phases (their sum)");
  RunOptions o = run_options(r.config, "phased.toml");
  ASSERT_EQ(o.phases.size(), 2u);
  EXPECT_EQ(o.phases[0].first_epoch, 0);
  EXPECT_EQ(o.phases[1].first_epoch, 2);
  EXPECT_EQ(o.phases[0].train.trainable, std::vector<std::string>{"head"});
  EXPECT_DOUBLE_EQ(o.phases[0].train.optimizer.lr, 1e-3);
  EXPECT_TRUE(o.phases[1].train.trainable.empty());
  EXPECT_DOUBLE_EQ(o.phases[1].train.optimizer.lr, 1e-4);
  EXPECT_EQ(o.phases[1].train.optimizer.name, "adam");  // inherited key of the same table
  EXPECT_FALSE(o.phases[0].keep_state);
  EXPECT_TRUE(o.phases[1].keep_state);
  EXPECT_EQ(phase_of(o.phases, 1), 0u);
  EXPECT_EQ(phase_of(o.phases, 2), 1u);
  // Without phases, one phase is the train table.
  Json plain = r.config;
  plain["phases"] = Json::array();
  RunOptions p = run_options(plain, "plain");
  ASSERT_EQ(p.phases.size(), 1u);
  EXPECT_EQ(p.phases[0].epochs, 3);
}

TEST(Phases, BadPhasesAreRefusedNamingTheEntryAndKey) {
  auto with = [](const std::string& from, const std::string& to) {
    std::string text = kPhased;
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return text.replace(at, from.size(), to);
  };
  std::string e = error_of([&] { plan_of(with("keep_state = true", "keep_stat = true")); });
  EXPECT_NE(e.find("phases[1].keep_stat"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key"), std::string::npos) << e;
  e = error_of([&] { plan_of(with("epochs = 1\n", "")); });
  EXPECT_NE(e.find("phases[1]"), std::string::npos) << e;
  EXPECT_NE(e.find("no 'epochs'"), std::string::npos) << e;
  e = error_of([&] { plan_of(with("epochs = 2", "epochs = 0")); });
  EXPECT_NE(e.find("phases[0].epochs"), std::string::npos) << e;
  e = error_of([&] { plan_of(with("lr = 1e-4", "lr = \"fast\"")); });
  EXPECT_NE(e.find("phases[1]"), std::string::npos) << e;
  EXPECT_NE(e.find("optimizer.lr"), std::string::npos) << e;
  e = error_of([&] { plan_of(with("trainable = [\"head\"]", "trainable = [\"haed\"]")); });
  EXPECT_NE(e.find("phases[0].trainable"), std::string::npos) << e;
  EXPECT_NE(e.find("haed"), std::string::npos) << e;
  // An explicit train.epochs must be the phases' sum.
  e = error_of([&] { plan_of(kPhased, {{"train.epochs", "5"}}); });
  EXPECT_NE(e.find("train.epochs"), std::string::npos) << e;
  EXPECT_NE(e.find("add up to 3"), std::string::npos) << e;
  EXPECT_EQ(plan_of(kPhased, {{"train.epochs", "3"}}).runs.size(), 1u);
}

TEST(Phases, TheSharedPrefixIsTheShortestOfThePhases) {
  Plan plan = plan_of(kPhased);
  RunOptions o = run_options(plan.runs[0].config, "phased.toml");
  models::ModelOptions mo = o.model;
  mo.in_channels = 1;
  mo.input_hw = 8;
  mo.num_classes = 3;
  auto model = models::build_model(mo);
  EXPECT_EQ(run_cut(*model, o.phases), 0);  // the last phase trains everything
  std::vector<Phase> head_only(o.phases.begin(), o.phases.begin() + 1);
  EXPECT_EQ(run_cut(*model, head_only), model->num_stages());
  EXPECT_TRUE(any_phase_updates_frozen_bn(o.phases));  // the default frozen_bn is "update"
}

TEST(Phases, TheEngineTrainsWhatEachPhaseSays) {
  const auto dir = testing::fresh_dir("phases");
  StudyResult result = run_study(plan_of(kPhased), testing::runner(dir));
  ASSERT_EQ(result.failed, 0) << (result.failures.empty() ? "" : result.failures.front());
  auto db = store::Store::open((dir / "study.db").string(), {true, false});
  const auto runs = db->runs();
  ASSERT_EQ(runs.size(), 1u);
  // 48 training images in batches of 16: 3 steps per epoch. The update-ratio probe follows
  // the trainable set: the head from the start, the trunk from the third epoch (step 6).
  std::set<int64_t> head_steps, trunk_steps;
  for (const auto& p : db->scalars(runs[0].id, "step")) {
    if (p.name == "update_ratio/head.0") head_steps.insert(p.step);
    if (p.name == "update_ratio/features.0.0") trunk_steps.insert(p.step);
  }
  EXPECT_EQ(head_steps, (std::set<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(trunk_steps, (std::set<int64_t>{6, 7, 8}));
  EXPECT_EQ(db->epochs_done(runs[0].id), 3);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace normlab::study
