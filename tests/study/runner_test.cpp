#include "study/runner.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/files.h"
#include "store/store.h"
#include "study/study_dirs.h"

namespace normlab::study {
namespace {

namespace fs = std::filesystem;

const char* kTiny = R"toml(
[study]
name = "tiny"
seeds = [0, 1]

[pretrain]
data.dataset = "synthetic"
data.classes = [0, 1, 2]
data.synthetic = { size = 192, classes = 6, hw = 12 }
model.width = 4
model.depth = 2
model.head.hidden = 8
train.epochs = 1
train.batch_size = 32

[run]
data.dataset = "synthetic"
data.classes = [3, 4, 5]
data.synthetic = { size = 192, classes = 6, hw = 12 }
data.augment = { hflip = true, crop_padding = 2 }
model.width = 4
model.depth = 2
model.head.hidden = 8
model.weights = "pretrain"
model.weights_skip = ["head"]
train.epochs = 2
train.batch_size = 32
train.trainable = ["features.1", "head"]
train.param_groups = [{ pattern = "features.1", lr = 1e-4 }]
probe.landscape = { enabled = true, resolution = 3, batches = 1 }

[grid]
"model.head.norm" = ["bn", "frn"]
)toml";

using testing::fresh_dir;
using testing::runner;

TEST(Runner, RunsSkipsAndIsBitIdenticalAcrossInvocations) {
  Plan plan = expand(parse_spec(kTiny, "tiny.toml"), {});
  ASSERT_EQ(plan.runs.size(), 4u);
  auto d1 = fresh_dir("a"), d2 = fresh_dir("b");
  StudyResult r1 = run_study(plan, runner(d1));
  EXPECT_EQ(r1.completed, 5);  // pretraining + 4 runs
  EXPECT_EQ(r1.failed, 0) << (r1.failures.empty() ? "" : r1.failures[0]);
  StudyResult r2 = run_study(plan, runner(d2));
  EXPECT_EQ(r2.completed, 5);

  auto s1 = store::Store::open((d1 / "study.db").string(), {true, false});
  auto s2 = store::Store::open((d2 / "study.db").string(), {true, false});
  auto runs1 = s1->runs();
  auto runs2 = s2->runs();
  ASSERT_EQ(runs1.size(), 5u);
  for (size_t i = 0; i < runs1.size(); ++i) {
    EXPECT_EQ(runs1[i].config_hash, runs2[i].config_hash);
    EXPECT_EQ(runs1[i].status, store::RunStatus::kComplete);
    for (const char* kind : {"step", "epoch"}) {
      auto a = s1->scalars(runs1[i].id, kind);
      auto b = s2->scalars(runs2[i].id, kind);
      ASSERT_EQ(a.size(), b.size());
      ASSERT_FALSE(a.empty());
      for (size_t k = 0; k < a.size(); ++k) {
        if (a[k].name.rfind("time/", 0) == 0 || a[k].name == "train/images_per_s") continue;
        EXPECT_EQ(a[k].value, b[k].value) << runs1[i].name << " " << a[k].name << " @" << a[k].step;
      }
    }
  }
  // Grid runs carry per-layer gradient norms, evaluation metrics, test metrics, a landscape.
  const auto& run = runs1[1];
  EXPECT_FALSE(s1->scalars(run.id, "step", "grad_norm/pre/features.1").empty());
  EXPECT_TRUE(s1->scalars(run.id, "step", "grad_norm/pre/features.0").empty());
  EXPECT_EQ(s1->scalars(run.id, "epoch", "val/acc").size(), 2u);
  EXPECT_EQ(s1->scalars(run.id, "epoch", "test/acc").size(), 1u);
  EXPECT_EQ(s1->surfaces(run.id, "landscape").size(), 1u);
  EXPECT_EQ(s1->matrices(run.id, "confusion/val").size(), 1u);
  EXPECT_EQ(s1->epochs_done(run.id), 2);

  // Running again does nothing: everything is complete.
  StudyResult again = run_study(plan, runner(d1));
  EXPECT_EQ(again.completed, 0);
  EXPECT_EQ(again.skipped, 5);
  fs::remove_all(d1);
  fs::remove_all(d2);
}

TEST(Runner, DifferentSeedsGiveDifferentResults) {
  Spec spec = parse_spec(kTiny, "tiny.toml");
  ExpandOptions o;
  o.sets = {{"model.head.norm", "bn"}, {"probe.landscape.enabled", "false"}};
  Plan plan = expand(spec, o);
  auto d = fresh_dir("seeds");
  run_study(plan, runner(d));
  auto s = store::Store::open((d / "study.db").string(), {true, false});
  auto runs = s->runs();
  ASSERT_EQ(runs.size(), 3u);
  auto a = s->scalars(runs[1].id, "step", "train/loss");
  auto b = s->scalars(runs[2].id, "step", "train/loss");
  ASSERT_EQ(a.size(), b.size());
  bool differ = false;
  for (size_t i = 0; i < a.size(); ++i) differ = differ || a[i].value != b[i].value;
  EXPECT_TRUE(differ);
  fs::remove_all(d);
}

TEST(Runner, FailedRunIsRecordedAndOthersContinue) {
  Spec spec = parse_spec(kTiny, "tiny.toml");
  ExpandOptions o;
  // A huge SGD step makes the loss non-finite in every run.
  o.sets = {{"train.optimizer.name", "sgd"},
            {"train.optimizer.lr", "1e30"},
            {"train.param_groups", "[]"},
            {"study.seeds", "[0]"},
            {"probe.landscape.enabled", "false"}};
  Plan plan = expand(spec, o);
  auto d = fresh_dir("fail");
  StudyResult r = run_study(plan, runner(d));
  EXPECT_EQ(r.completed, 1);  // the pretraining run
  EXPECT_EQ(r.failed, 2);
  ASSERT_FALSE(r.failures.empty());
  EXPECT_NE(r.failures[0].find("non-finite"), std::string::npos) << r.failures[0];
  auto s = store::Store::open((d / "study.db").string(), {true, false});
  EXPECT_EQ(s->runs()[1].status, store::RunStatus::kFailed);
  EXPECT_NE(s->runs()[1].error.find("non-finite"), std::string::npos);
  fs::remove_all(d);
}

}  // namespace
}  // namespace normlab::study
