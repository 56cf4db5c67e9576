// Per-minibatch validation (study/step_validation.h): recorded every val_every steps for every
// run of a group, equal to the epoch's validation loss when it covers the whole validation
// split at an epoch's last step, and invisible to training (the same losses without it).
#include "study/step_validation.h"

#include <gtest/gtest.h>

#include <map>

#include "store/metric_names.h"
#include "store/store.h"
#include "study/runner.h"
#include "study/spec.h"
#include "study_dirs.h"

namespace normlab::study {
namespace {

namespace metric = store::metric;

const char* kStudy = R"toml(
[study]
name = "step val"
seeds = [0]

[run]
data = { dataset = "synthetic", synthetic = { size = 100, classes = 3, hw = 8 }, val_fraction = 0.2 }
model = { backbone = "small_cnn", width = 4, depth = 2, head = { hidden = 8, dropout = 0.3 } }
train = { epochs = 2, batch_size = 16, trainable = ["features.1", "head"], frozen_bn = "freeze" }

[grid]
"model.head.norm" = ["bn", "ln"]
)toml";

std::map<std::string, std::vector<store::ScalarPoint>> run_and_read(
    const std::vector<std::pair<std::string, std::string>>& sets, const std::string& name) {
  const auto dir = testing::fresh_dir(name);
  ExpandOptions o;
  o.sets = sets;
  StudyResult r = run_study(expand(parse_spec(kStudy, "step.toml"), o), testing::runner(dir));
  EXPECT_EQ(r.failed, 0) << (r.failures.empty() ? "" : r.failures.front());
  auto db = store::Store::open((dir / "study.db").string(), {true, false});
  std::map<std::string, std::vector<store::ScalarPoint>> out;
  for (const auto& run : db->runs()) {
    for (const auto& p : db->scalars(run.id, "step")) out[run.name + "|" + p.name].push_back(p);
    for (const auto& p : db->scalars(run.id, "epoch")) {
      out[run.name + "|epoch " + p.name].push_back(p);
    }
  }
  std::filesystem::remove_all(dir);
  return out;
}

TEST(StepValidation, EveryKStepsForEveryRunWithoutTouchingTraining) {
  // 80 training images in batches of 16: 5 steps per epoch; validation at each epoch's last
  // step over all 21 validation images.
  auto with = run_and_read({{"train.val_every", "5"}, {"train.val_sample", "1000"}}, "step_val");
  auto without = run_and_read({}, "step_val_off");
  for (const std::string run : {"norm=bn seed=0", "norm=ln seed=0"}) {
    SCOPED_TRACE(run);
    const auto& loss = with[run + "|" + metric::kStepValLoss];
    const auto& acc = with[run + "|" + metric::kStepValAcc];
    ASSERT_EQ(loss.size(), 2u);
    ASSERT_EQ(acc.size(), 2u);
    EXPECT_EQ(loss[0].step, 4);
    EXPECT_EQ(loss[1].step, 9);
    // The sample is the whole validation split: the epoch's own validation loss and accuracy.
    const auto& val = with[run + "|epoch " + metric::eval("val", "loss")];
    const auto& val_acc = with[run + "|epoch " + metric::eval("val", "acc")];
    ASSERT_EQ(val.size(), 2u);
    for (size_t e = 0; e < 2; ++e) {
      EXPECT_NEAR(loss[e].value, val[e].value, 1e-6 * val[e].value);
      EXPECT_NEAR(acc[e].value, val_acc[e].value, 1e-4);  // per-step values are float32
    }
    EXPECT_TRUE(without[run + "|" + metric::kStepValLoss].empty());
    // Training is bit-identical with and without it (dropout's stream untouched).
    const auto& a = with[run + "|" + metric::kTrainLoss];
    const auto& b = without[run + "|" + metric::kTrainLoss];
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].value, b[i].value) << i;
  }
  // Every 2 steps, on 5 images: a different loss than the whole split's.
  auto small = run_and_read({{"train.val_every", "2"}, {"train.val_sample", "5"}}, "step_small");
  const auto& part = small["norm=bn seed=0|" + metric::kStepValLoss];
  ASSERT_EQ(part.size(), 5u);
  for (size_t i = 0; i < part.size(); ++i) EXPECT_EQ(part[i].step, static_cast<int64_t>(2 * i + 1));
  EXPECT_NE(part[4].value, small["norm=bn seed=0|epoch val/loss"][1].value);
}

}  // namespace
}  // namespace normlab::study
