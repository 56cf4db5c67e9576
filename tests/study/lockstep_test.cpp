#include "study/lockstep.h"
#include "study/run_paths.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "io/state_dict.h"
#include "store/store.h"
#include "study/study_dirs.h"

namespace normlab::study {
namespace {

namespace fs = std::filesystem;

// Two head norms over one frozen prefix (features.0-1 of a small CNN), with dropout, flips and
// crops, so the test sees every source of randomness a lockstep group shares or keeps apart.
const char* kGroup = R"toml(
[study]
name = "group"
seeds = [3]

[run]
data.dataset = "synthetic"
data.synthetic = { size = 160, classes = 4, hw = 12 }
data.augment = { hflip = true, crop_padding = 2 }
model.width = 4
model.depth = 3
model.head = { hidden = 8, dropout = 0.3 }
train.epochs = 2
train.batch_size = 32
train.trainable = ["features.2", "head"]
train.param_groups = [{ pattern = "features.2", lr = 1e-3 }]
probe.landscape = { enabled = true, params = "head", resolution = 3, batches = 1 }

[grid]
"model.head.norm" = ["bn", "ln"]
)toml";

using testing::fresh_dir;
using testing::runner;

// Every final weight of every run, by run name.
std::map<std::string, io::StateDict> final_weights(const fs::path& dir) {
  auto db = store::Store::open((dir / "study.db").string(), {true, false});
  std::map<std::string, io::StateDict> out;
  for (const auto& r : db->runs()) {
    EXPECT_EQ(r.status, store::RunStatus::kComplete) << r.name << ": " << r.error;
    out[r.name] = io::load_state_dict(RunPaths::of(dir.string(), r.config_hash).final_weights());
  }
  return out;
}

void expect_same_weights(const io::StateDict& a, const io::StateDict& b, const std::string& what) {
  ASSERT_EQ(a.items.size(), b.items.size()) << what;
  for (const auto& [name, t] : a.items) {
    const torch::Tensor* other = b.find(name);
    ASSERT_NE(other, nullptr) << what << ": " << name;
    EXPECT_TRUE(torch::equal(t, *other)) << what << ": " << name;
  }
}

const torch::Tensor& at(const io::StateDict& d, const std::string& name) {
  const torch::Tensor* t = d.find(name);
  if (t == nullptr) throw std::runtime_error("no tensor " + name);
  return *t;
}

ExpandOptions sets(std::vector<std::pair<std::string, std::string>> kv) {
  ExpandOptions o;
  o.sets = std::move(kv);
  return o;
}

Json timing_of(const fs::path& dir) {
  auto db = store::Store::open((dir / "study.db").string(), {true, false});
  return Json::parse(db->meta("engine_timing").value_or("{}"));
}

TEST(Lockstep, GroupKeySeparatesWhatTheBatchesAndPrefixDependOn) {
  Plan plan = expand(parse_spec(kGroup, "group.toml"), {});
  ASSERT_EQ(plan.runs.size(), 2u);
  EXPECT_EQ(group_key(plan.runs[0].config), group_key(plan.runs[1].config));
  Json other = plan.runs[0].config;
  other["seed"] = 4;
  EXPECT_NE(group_key(other), group_key(plan.runs[0].config));
  other = plan.runs[0].config;
  other["train"]["trainable"] = Json::array({"head"});
  EXPECT_NE(group_key(other), group_key(plan.runs[0].config));
  other = plan.runs[0].config;
  other["train"]["clip_norm"] = 0.5;  // a per-run choice: same group
  EXPECT_EQ(group_key(other), group_key(plan.runs[0].config));
  other["probe"]["grad_hist"]["enabled"] = true;
  other["train"]["optimizer"]["lr"] = 0.5;
  other["model"]["head"]["norm"] = "ln";
  EXPECT_EQ(group_key(other), group_key(plan.runs[0].config));
  other = plan.runs[0].config;
  other["model"]["bn_momentum"] = 0.8;  // changes the prefix's BN statistics in update mode
  EXPECT_NE(group_key(other), group_key(plan.runs[0].config));
  // A setting nobody has declared tail-only separates groups.
  other = plan.runs[0].config;
  other["model"]["a_future_setting"] = 1;
  EXPECT_NE(group_key(other), group_key(plan.runs[0].config));
  EXPECT_FALSE(prefix_key(other).architecture().contains("weights"));
  EXPECT_FALSE(prefix_key(other).architecture().contains("head"));
}

TEST(Lockstep, EachRunOfAGroupEqualsTheSameRunTrainedAlone) {
  // The group shares batches, augmentation draws and the prefix forward; each run keeps its
  // own dropout stream. Trained together or alone, a run must end with the same weights.
  Plan plan = expand(parse_spec(kGroup, "group.toml"), {});
  auto together = fresh_dir("together");
  StudyResult r = run_study(plan, runner(together));
  ASSERT_EQ(r.failed, 0) << r.failures.front();
  EXPECT_EQ(r.completed, 2);
  auto grouped = final_weights(together);
  for (const char* norm : {"bn", "ln"}) {
    Plan alone_plan = expand(parse_spec(kGroup, "group.toml"), sets({{"model.head.norm", norm}}));
    ASSERT_EQ(alone_plan.runs.size(), 1u);
    auto alone = fresh_dir(std::string("alone_") + norm);
    ASSERT_EQ(run_study(alone_plan, runner(alone)).completed, 1);
    auto single = final_weights(alone);
    ASSERT_EQ(single.size(), 1u);
    expect_same_weights(grouped.at(single.begin()->first), single.begin()->second, norm);
    fs::remove_all(alone);
  }
  // The prefix (frozen, BN statistics updated in train mode) is identical in both runs.
  const auto& bn = grouped.begin()->second;
  const auto& ln = std::next(grouped.begin())->second;
  EXPECT_TRUE(
      torch::equal(at(bn, "features.0.1.running_mean"), at(ln, "features.0.1.running_mean")));
  EXPECT_FALSE(
      torch::equal(at(bn, "features.2.1.running_mean"), at(ln, "features.2.1.running_mean")));
  fs::remove_all(together);
}

TEST(Lockstep, FeatureCacheIsBuiltOnceReusedAndRebuiltWhenCorrupt) {
  auto cache = fresh_dir("cache");
  setenv("NORMLAB_CACHE", cache.c_str(), 1);
  Plan plan = expand(parse_spec(kGroup, "group.toml"), sets({{"train.frozen_bn", "freeze"},
                                                             {"data.augment.crop_padding", "0"},
                                                             {"data.feature_cache", "require"},
                                                             {"train.tta", "true"}}));
  auto a = fresh_dir("cached_a");
  ASSERT_EQ(run_study(plan, runner(a)).completed, 2);
  // train (2 views: flips) + val (2 views: TTA) + test (2 views)
  EXPECT_GT(timing_of(a)["cache_images"].get<int64_t>(), 0);
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(cache / "features")) files.push_back(e.path());
  ASSERT_EQ(files.size(), 3u);  // train, val, test

  // A second study reuses every file.
  auto b = fresh_dir("cached_b");
  ASSERT_EQ(run_study(plan, runner(b)).completed, 2);
  EXPECT_EQ(timing_of(b)["cache_images"].get<int64_t>(), 0);
  auto wa = final_weights(a), wb = final_weights(b);
  for (const auto& [name, dict] : wa) expect_same_weights(dict, wb.at(name), name);
  // TTA: val logits average two views; nothing to compare against here beyond completion.

  // A corrupted file is detected on open and rebuilt; the study still completes.
  {
    std::string bytes = read_file_text(files[0].string());
    bytes[bytes.size() - 3] ^= 0x5a;
    write_file_atomic(files[0].string(), bytes);
  }
  auto c = fresh_dir("cached_c");
  ASSERT_EQ(run_study(plan, runner(c)).completed, 2);
  EXPECT_GT(timing_of(c)["cache_images"].get<int64_t>(), 0);
  auto wc = final_weights(c);
  for (const auto& [name, dict] : wa) expect_same_weights(dict, wc.at(name), name);
  unsetenv("NORMLAB_CACHE");
  for (const auto& d : {a, b, c, cache}) fs::remove_all(d);
}

TEST(Lockstep, RequiringTheCacheWithCropsNamesWhy) {
  Plan plan = expand(parse_spec(kGroup, "group.toml"), sets({{"data.feature_cache", "require"}}));
  auto d = fresh_dir("require");
  StudyResult r = run_study(plan, runner(d));
  EXPECT_EQ(r.failed, 2);
  ASSERT_FALSE(r.failures.empty());
  EXPECT_NE(r.failures[0].find("data.feature_cache"), std::string::npos) << r.failures[0];
  EXPECT_NE(r.failures[0].find("augmentation"), std::string::npos) << r.failures[0];
  fs::remove_all(d);
}

TEST(Lockstep, EarlyStoppingEndsTheRunAndRestoresTheBestEpoch) {
  // min_delta is unreachable: epoch 0 sets the best, nothing improves on it, patience 1
  // stops after epoch 1 of 4 and the weights of epoch 0 are restored.
  Plan plan =
      expand(parse_spec(kGroup, "group.toml"), sets({{"train.epochs", "4"},
                                                     {"train.early_stopping.patience", "1"},
                                                     {"train.early_stopping.min_delta", "1e9"},
                                                     {"model.head.norm", "bn"},
                                                     {"train.schedule.name", "cosine"}}));
  auto d = fresh_dir("early");
  StudyResult r = run_study(plan, runner(d));
  ASSERT_EQ(r.completed, 1) << (r.failures.empty() ? "" : r.failures[0]);
  auto db = store::Store::open((d / "study.db").string(), {true, false});
  auto run = db->runs().front();
  EXPECT_EQ(db->epochs_done(run.id), 2);
  auto best = db->scalars(run.id, "epoch", "early_stopping/best_epoch");
  ASSERT_EQ(best.size(), 1u);
  EXPECT_EQ(best[0].value, 0.0);
  auto lr = db->scalars(run.id, "epoch", "lr/factor");
  ASSERT_EQ(lr.size(), 2u);
  EXPECT_LT(lr[1].value, lr[0].value);  // cosine decays
  fs::remove_all(d);
}

std::vector<double> series(const store::Store& db, int64_t run, const std::string& name) {
  std::vector<double> out;
  for (const auto& p : db.scalars(run, store::Axis::kEpoch, name)) {
    if (p.name == name) out.push_back(p.value);
  }
  return out;
}

TEST(Lockstep, FinalValidationMetricsComeFromTheRestoredBestWeights) {
  // Frozen prefix in eval mode: the restored weights of epoch 0 give epoch 0's validation
  // metrics again, and those are what the run records last (like its test metrics).
  Plan plan =
      expand(parse_spec(kGroup, "group.toml"), sets({{"train.epochs", "4"},
                                                     {"train.frozen_bn", "freeze"},
                                                     {"train.early_stopping.patience", "1"},
                                                     {"train.early_stopping.min_delta", "1e9"},
                                                     {"model.head.norm", "ln"}}));
  auto d = fresh_dir("restored_val");
  ASSERT_EQ(run_study(plan, runner(d)).completed, 1);
  auto db = store::Store::open((d / "study.db").string(), {true, false});
  auto run = db->runs().front();
  for (const char* metric : {"val/loss", "val/acc"}) {
    auto v = series(*db, run.id, metric);
    ASSERT_EQ(v.size(), 2u) << metric;
    EXPECT_EQ(v[1], v[0]) << metric;
  }
  EXPECT_EQ(series(*db, run.id, "test/loss").size(), 1u);
  fs::remove_all(d);
}

TEST(Lockstep, TtaIsReportedButEarlyStoppingMonitorsPlainValidationUnlessAsked) {
  for (const bool tta_monitor : {false, true}) {
    Plan plan = expand(parse_spec(kGroup, "group.toml"),
                       sets({{"train.epochs", "3"},
                             {"train.tta", "true"},
                             {"train.tta_monitor", tta_monitor ? "true" : "false"},
                             {"train.early_stopping.patience", "10"},
                             {"train.early_stopping.restore_best", "false"},
                             {"model.head.norm", "ln"}}));
    auto d = fresh_dir(std::string("tta_") + (tta_monitor ? "1" : "0"));
    ASSERT_EQ(run_study(plan, runner(d)).completed, 1);
    auto db = store::Store::open((d / "study.db").string(), {true, false});
    auto run = db->runs().front();
    auto tta = series(*db, run.id, "val/loss");
    auto plain = series(*db, run.id, "val_no_tta/loss");
    auto seen = series(*db, run.id, "early_stopping/monitored");
    ASSERT_EQ(tta.size(), 3u);
    ASSERT_EQ(plain.size(), 3u);
    EXPECT_NE(tta[0], plain[0]);  // the mirrored view changes the logits
    EXPECT_EQ(seen, tta_monitor ? tta : plain);
    fs::remove_all(d);
  }
}

TEST(Lockstep, RunKilledAfterItsFinalCheckpointIsCompletedWithoutRetraining) {
  Plan plan = expand(parse_spec(kGroup, "group.toml"), sets({{"model.head.norm", "ln"}}));
  auto d = fresh_dir("final_ckpt");
  ASSERT_EQ(run_study(plan, runner(d)).completed, 1);
  auto before = final_weights(d);
  {
    // What a SIGKILL between the last checkpoint and the status update leaves behind.
    auto db = store::Store::open((d / "study.db").string());
    auto run = db->runs().front();
    db->set_status(run.id, store::RunStatus::kRunning);
    fs::remove(RunPaths::of(d.string(), run.config_hash).final_weights());
  }
  StudyResult r = run_study(plan, runner(d));
  EXPECT_EQ(r.completed, 1);
  EXPECT_EQ(r.failed, 0);
  EXPECT_EQ(timing_of(d)["train_samples"].get<int64_t>(), 0);  // nothing retrained
  auto after = final_weights(d);
  for (const auto& [name, dict] : before) expect_same_weights(dict, after.at(name), name);
  fs::remove_all(d);
}

}  // namespace
}  // namespace normlab::study
