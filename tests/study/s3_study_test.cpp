// studies/s3_two_stage.toml (STUDIES.md S3): the plan matches the seed's two stages, and the
// smoke variant runs both end to end: stage 1 from the feature cache, stage 2 from stage 1's
// weights.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cli/run_normlab.h"
#include "io/state_dict.h"
#include "store/store.h"
#include "study/lockstep.h"
#include "study/run_paths.h"
#include "study/runner.h"
#include "study/spec.h"
#include "study/study_dirs.h"

namespace normlab::study {
namespace {

namespace fs = std::filesystem;
using Trainable = std::vector<std::string>;

Spec s3_spec() { return load_spec(normlab::testing::source_path("studies/s3_two_stage.toml")); }

ExpandOptions sets(std::vector<std::pair<std::string, std::string>> kv, bool smoke = false) {
  ExpandOptions o;
  o.sets = std::move(kv);
  o.smoke = smoke;
  return o;
}

// n (Keras layers unfrozen) -> torchvision module paths, as the study file documents.
const std::map<int, Trainable>& unfreeze_top() {
  static const std::map<int, Trainable> m = {
      {0, {"head"}},
      {10, {"features.17", "features.18", "head"}},
      {20, {"features.16", "features.17", "features.18", "head"}},
      {30, {"features.15", "features.16", "features.17", "features.18", "head"}}};
  return m;
}

using testing::fresh_dir;
using testing::runner;

TEST(S3Study, PlanHasBothStagesAndTheUnfreezeGrid) {
  Plan plan = expand(s3_spec(), {});
  ASSERT_EQ(plan.pretrains.size(), 1u);
  const Json& pre = plan.pretrains[0].config;
  // Stage 1: head only on cached features of the frozen backbone.
  EXPECT_EQ(pre["train"]["trainable"], Json::array({"head"}));
  EXPECT_EQ(pre["train"]["frozen_bn"], "freeze");
  EXPECT_EQ(pre["data"]["feature_cache"], "require");
  for (const char* k : {"rotate", "zoom", "shift", "mixup", "cutmix"}) {
    EXPECT_EQ(pre["data"]["augment"][k].get<double>(), 0.0) << k;
  }
  EXPECT_EQ(pre["data"]["augment"]["crop_padding"], 0);
  EXPECT_EQ(pre["train"]["optimizer"]["name"], "adam");
  EXPECT_EQ(pre["train"]["batch_size"], 128);
  EXPECT_EQ(pre["train"]["epochs"], 10);
  EXPECT_EQ(pre["train"]["early_stopping"]["patience"], 7);
  EXPECT_EQ(pre["train"]["early_stopping"]["monitor"], "val/loss");
  EXPECT_EQ(pre["model"]["weights"], "torchvision:mobilenet_v2:IMAGENET1K_V1");
  const Json head = {{"kind", "norm_mlp"}, {"hidden", 256}, {"norm", "bn"}, {"dropout", 0.25}};
  EXPECT_EQ(pre["model"]["head"], head);
  for (const Json* cfg : std::vector<const Json*>{&pre, &plan.runs.front().config}) {
    EXPECT_EQ((*cfg)["data"]["dataset"], "cifar10");
    EXPECT_DOUBLE_EQ((*cfg)["data"]["val_fraction"].get<double>(), 0.1);
    EXPECT_EQ((*cfg)["data"]["resize"], 160);
    EXPECT_EQ((*cfg)["data"]["normalize"], "minus-one-one");
    EXPECT_DOUBLE_EQ((*cfg)["train"]["label_smoothing"].get<double>(), 0.05);
  }

  // Stage 2: 4 depths x 3 learning rates x 3 seeds, all from stage 1's weights.
  ASSERT_EQ(plan.runs.size(), 36u);
  std::map<Trainable, int> per_depth;
  std::set<double> lrs;
  std::set<std::string> groups;
  for (const auto& run : plan.runs) {
    const Json& c = run.config;
    EXPECT_EQ(c["model"]["weights"].get<std::string>().rfind("pretrain:", 0), 0u) << run.name;
    EXPECT_EQ(c["model"]["weights_skip"], Json::array());  // the trained head is loaded too
    // Strict loading needs stage 1's architecture.
    for (const char* k : {"backbone", "width_mult", "head", "norm", "tf_same_padding"}) {
      EXPECT_EQ(c["model"][k], pre["model"][k]) << k;
    }
    EXPECT_EQ(c["train"]["optimizer"]["name"], "adamw");
    EXPECT_GT(c["train"]["optimizer"]["weight_decay"].get<double>(), 0.0);
    EXPECT_EQ(c["train"]["schedule"]["name"], "plateau");
    EXPECT_EQ(c["train"]["schedule"]["monitor"], "val/loss");
    EXPECT_EQ(c["train"]["early_stopping"]["patience"], 10);
    EXPECT_EQ(c["train"]["early_stopping"]["monitor"], "val/loss");
    EXPECT_EQ(c["train"]["tta"], true);
    EXPECT_EQ(c["train"]["frozen_bn"], "freeze");
    EXPECT_EQ(c["train"]["batch_size"], 64);
    EXPECT_EQ(c["data"]["augment"]["hflip"], true);
    EXPECT_DOUBLE_EQ(c["data"]["augment"]["rotate"].get<double>(), 20.0);
    EXPECT_GT(c["data"]["augment"]["zoom"].get<double>(), 0.0);
    EXPECT_GT(c["data"]["augment"]["shift"].get<double>(), 0.0);
    per_depth[c["train"]["trainable"].get<Trainable>()]++;
    lrs.insert(c["train"]["optimizer"]["lr"].get<double>());
    groups.insert(group_key(c));
  }
  ASSERT_EQ(per_depth.size(), unfreeze_top().size());
  for (const auto& [n, trainable] : unfreeze_top()) {
    EXPECT_EQ(per_depth[trainable], 9) << "n = " << n;
  }
  EXPECT_EQ(lrs, (std::set<double>{3e-4, 1e-4, 1e-5}));
  // The learning rates of one depth and seed train in lockstep over one frozen prefix.
  EXPECT_EQ(groups.size(), 12u);

  // The --set lines the file documents.
  Plan exact = expand(
      s3_spec(), sets({{"train.trainable", R"(["features.14.conv.3","features.15","features.16",)"
                                           R"("features.17","features.18","head"])"}}));
  ASSERT_EQ(exact.runs.size(), 9u);
  EXPECT_EQ(exact.runs[0].config["train"]["trainable"][0], "features.14.conv.3");
  Plan mixup = expand(s3_spec(), sets({{"data.augment.mixup", "0.2"}, {"train.batch_size", "32"}}));
  EXPECT_DOUBLE_EQ(mixup.runs[0].config["data"]["augment"]["mixup"].get<double>(), 0.2);
  EXPECT_EQ(mixup.runs[0].config["data"]["augment"]["hflip"], true);
  EXPECT_EQ(mixup.runs[0].config["train"]["batch_size"], 32);
  const std::string tflite = "w.safetensors";
  Plan tf = expand(s3_spec(), sets({{"pretrain.model.weights", tflite},
                                    {"pretrain.model.recalibrate_bn", "true"},
                                    {"pretrain.model.tf_same_padding", "true"},
                                    {"model.tf_same_padding", "true"},
                                    {"pretrain.data.normalize", "tf-128"},
                                    {"data.normalize", "tf-128"}}));
  EXPECT_EQ(tf.pretrains[0].config["model"]["weights"], tflite);
  EXPECT_EQ(tf.pretrains[0].config["model"]["recalibrate_bn"], true);
  for (const auto& run : tf.runs) {
    EXPECT_EQ(run.config["model"]["weights"].get<std::string>().rfind("pretrain:", 0), 0u);
    EXPECT_EQ(run.config["model"]["tf_same_padding"], true);
    EXPECT_EQ(run.config["model"]["recalibrate_bn"], false);
    EXPECT_EQ(run.config["data"]["normalize"], "tf-128");
  }
}

TEST(S3Study, SmokeRunsStageOneFromTheFeatureCacheAndStageTwoFromItsWeights) {
  const fs::path cache = fresh_dir("cache");
  const fs::path out = fresh_dir("out");
  setenv("NORMLAB_CACHE", cache.c_str(), 1);

  Plan plan = expand(s3_spec(), sets({}, /*smoke=*/true));
  ASSERT_EQ(plan.pretrains.size(), 1u);
  ASSERT_EQ(plan.runs.size(), 12u);  // 4 depths x 3 learning rates, one seed
  StudyResult r = run_study(plan, runner(out));
  ASSERT_EQ(r.failed, 0) << r.failures.front();
  EXPECT_EQ(r.completed, 13);

  // Stage 1 read the frozen backbone from the cache: train, val and test files were built.
  auto db = store::Store::open((out / "study.db").string(), {true, false});
  Json timing = Json::parse(db->meta("engine_timing").value_or("{}"));
  EXPECT_GT(timing.value("cache_images", int64_t{0}), 0) << timing.dump();
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(cache / "features")) files += e.is_regular_file();
  EXPECT_EQ(files, 3u);

  auto runs = db->runs();
  ASSERT_EQ(runs.size(), 13u);
  const auto& pre = runs.front();
  EXPECT_EQ(pre.name, "pretrain");
  for (const auto& run : runs) {
    EXPECT_EQ(run.status, store::RunStatus::kComplete) << run.name << ": " << run.error;
    EXPECT_FALSE(db->scalars(run.id, "epoch", "val/acc").empty()) << run.name;
    EXPECT_EQ(db->scalars(run.id, "epoch", "test/acc").size(), 1u) << run.name;
    EXPECT_EQ(db->matrices(run.id, "confusion/test").size(), 1u) << run.name;
    if (&run == &pre) continue;
    Json cfg = Json::parse(run.config_json);
    EXPECT_EQ(cfg["model"]["weights"], "pretrain:" + pre.config_hash.substr(0, 16)) << run.name;
    EXPECT_EQ(db->epochs_done(run.id), 2) << run.name;
    // Only the unfrozen blocks move: gradient norms of features.18 exist iff it trains.
    bool deep = cfg["train"]["trainable"].size() > 1;
    EXPECT_EQ(db->scalars(run.id, "step", "grad_norm/pre/features.18.0.weight").empty(), !deep)
        << run.name;
  }

  // A second seed joins the same study directory: stage 1 and the seed-0 runs are reused, and
  // the seed-1 runs start from stage 1's (seed-0) weights, not from their own initialisation.
  Plan more =
      expand(s3_spec(), sets({{"study.seeds", "[0, 1]"}, {"train.optimizer.lr", "1e-5"}}, true));
  ASSERT_EQ(more.runs.size(), 8u);
  StudyResult r2 = run_study(more, runner(out));
  ASSERT_EQ(r2.failed, 0) << r2.failures.front();
  EXPECT_EQ(r2.completed, 4);
  EXPECT_EQ(r2.skipped, 5);
  io::StateDict stage1 =
      io::load_state_dict(RunPaths::of(out.string(), pre.config_hash).final_weights());
  auto db2 = store::Store::open((out / "study.db").string(), {true, false});
  int checked = 0;
  for (const auto& run : db2->runs()) {
    if (run.seed != 1) continue;
    ++checked;
    io::StateDict w =
        io::load_state_dict(RunPaths::of(out.string(), run.config_hash).final_weights());
    // features.0-1 are frozen in every stage-2 run (BN statistics included: "freeze").
    for (const auto& [name, t] : stage1.items) {
      if (name.rfind("features.1.", 0) != 0 && name.rfind("features.0.", 0) != 0) continue;
      const torch::Tensor* mine = w.find(name);
      ASSERT_NE(mine, nullptr) << name;
      EXPECT_TRUE(torch::equal(*mine, t)) << run.name << ": " << name;
    }
  }
  EXPECT_EQ(checked, 4);
  unsetenv("NORMLAB_CACHE");
  fs::remove_all(out);
  fs::remove_all(cache);
}

}  // namespace
}  // namespace normlab::study
