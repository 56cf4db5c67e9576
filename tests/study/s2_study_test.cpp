// studies/s2_bn_transfer.toml (STUDIES.md S2): source models with and without BatchNorm, one
// pretraining per source model and seed; naive fine-tuning vs freeze-then-unfreeze vs
// freeze-non-BN as phases; the smoke variant records per-minibatch weight histograms, the
// variance change and the per-minibatch validation loss, and the freeze phases train what
// they say.
#include <gtest/gtest.h>
#include <stb/stb_image_write.h>

#include <filesystem>
#include <map>
#include <set>

#include "cli/run_normlab.h"
#include "core/files.h"
#include "io/state_dict.h"
#include "store/store.h"
#include "study/run_options.h"
#include "study/run_paths.h"
#include "study/runner.h"
#include "study/spec.h"
#include "study/study_dirs.h"

namespace normlab::study {
namespace {

namespace fs = std::filesystem;

Spec s2_spec() { return load_spec(normlab::testing::source_path("studies/s2_bn_transfer.toml")); }

TEST(S2Study, SourceModelsPerSeedAndTheFourStrategies) {
  Plan plan = expand(s2_spec(), {});
  ASSERT_EQ(plan.pretrains.size(), 6u);  // with and without BN, per seed
  ASSERT_EQ(plan.runs.size(), 12u);
  std::map<std::string, const RunPlan*> pretrain_by_ref;
  for (const auto& p : plan.pretrains) {
    EXPECT_EQ(p.config["data"]["classes"], Json::parse("[0, 1, 2, 3, 4]")) << p.name;
    pretrain_by_ref["pretrain:" + sha256_hex(canonical_text(p.config)).substr(0, 16)] = &p;
  }
  for (const auto& r : plan.runs) {
    SCOPED_TRACE(r.name);
    const Json& c = r.config;
    EXPECT_EQ(c["data"]["classes"], Json::parse("[5, 6, 7, 8, 9]"));
    const RunPlan* pre = pretrain_by_ref.at(c["model"]["weights"].get<std::string>());
    EXPECT_EQ(pre->config["model"]["norm"], c["model"]["norm"]);
    EXPECT_EQ(pre->config["seed"], c["seed"]);
    RunOptions o = run_options(c, r.name);
    const bool phased = r.group == "strategy=freeze" || r.group == "strategy=freeze-non-bn";
    EXPECT_EQ(o.train.epochs, phased ? 8 : 5);
    ASSERT_EQ(o.phases.size(), phased ? 2u : 1u);
    if (phased) {
      EXPECT_EQ(o.phases[0].epochs, 3);
      EXPECT_TRUE(o.phases[1].train.trainable.empty());
      EXPECT_DOUBLE_EQ(o.phases[1].train.optimizer.lr, 1e-4);
    }
  }
}

TEST(S2Study, SmokeRecordsWhatTheSeedsFiguresNeed) {
  ExpandOptions o;
  o.smoke = true;
  Plan plan = expand(s2_spec(), o);
  const fs::path dir = testing::fresh_dir("s2_smoke");
  StudyResult r = run_study(plan, testing::runner(dir));
  ASSERT_EQ(r.failed, 0) << r.failures.front();
  auto db = store::Store::open((dir / "study.db").string(), {true, false});
  std::map<std::string, store::RunRecord> runs;
  for (const auto& run : db->runs()) runs[run.name] = run;
  ASSERT_EQ(runs.size(), 6u);
  for (const auto& name : {"strategy=naive-bn seed=0", "strategy=naive-nobn seed=0",
                           "strategy=freeze seed=0", "strategy=freeze-non-bn seed=0"}) {
    SCOPED_TRACE(name);
    const auto& run = runs.at(name);
    EXPECT_EQ(run.status, store::RunStatus::kComplete) << run.error;
    // Every layer's weights, frozen or not, every minibatch: the first conv included.
    EXPECT_FALSE(db->histograms(run.id, "weight_hist/conv1").empty());
    EXPECT_FALSE(db->histograms(run.id, "weight_hist/layer4.1.conv2").empty());
    bool delta = false, step_val = false;  // (4 steps: 2 epochs of 2)
    for (const auto& p : db->scalars(run.id, "step")) {
      delta = delta || p.name == "weight_var_delta/layer1.0.conv1";
      step_val = step_val || p.name == "step_val/loss";
    }
    EXPECT_TRUE(delta);
    EXPECT_TRUE(step_val);
    EXPECT_EQ(db->scalars(run.id, "step", "smoothness/beta").size(), 2u);  // steps 0 and 2
  }
  // freeze: the trunk did not move in the first phase. Its weights changed only in the second,
  // where the variance change of a trunk layer is non-zero, and zero before.
  const auto& freeze = runs.at("strategy=freeze seed=0");
  std::map<int64_t, double> conv_delta;
  for (const auto& p : db->scalars(freeze.id, "step", "weight_var_delta/layer1.0.conv1")) {
    conv_delta[p.step] = p.value;
  }
  ASSERT_FALSE(conv_delta.empty());
  // Classes 5-9 of 160 synthetic images, 0.1 for validation: 72 training images, batch 64.
  const int64_t steps_per_epoch = 2;
  bool moved_late = false;
  for (const auto& [step, value] : conv_delta) {
    if (step < steps_per_epoch) {
      EXPECT_EQ(value, 0.0) << step;
    }
    if (step >= steps_per_epoch) moved_late = moved_late || value != 0.0;
  }
  EXPECT_TRUE(moved_late);
  fs::remove_all(dir);
}

// The image-folder variant (Pets -> Imagewoof) on a tiny generated tree: a single-split source
// folder, a target with train/ and val/, PNG and JPEG.
TEST(S2Study, FolderVariantRunsOnAGeneratedTree) {
  const fs::path dir = testing::fresh_dir("s2_folders");
  auto image = [](const fs::path& p, int cls, int i, bool jpg) {
    fs::create_directories(p.parent_path());
    std::vector<uint8_t> px(40 * 40 * 3);
    for (size_t k = 0; k < px.size(); ++k) {
      // Each class its own stripes, plus per-image noise.
      px[k] = static_cast<uint8_t>(((k / 3 / (cls + 2)) % 2) * 150 + (k * 31 + i * 17) % 60);
    }
    const int ok = jpg ? stbi_write_jpg(p.c_str(), 40, 40, 3, px.data(), 90)
                       : stbi_write_png(p.c_str(), 40, 40, 3, px.data(), 40 * 3);
    ASSERT_NE(ok, 0) << p;
  };
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 12; ++i) {
      image(dir / "pets" / ("breed" + std::to_string(c)) / (std::to_string(i) + ".png"), c, i,
            false);
    }
  }
  for (int c = 0; c < 2; ++c) {
    for (int i = 0; i < 12; ++i) {
      image(dir / "woof/train" / ("n0" + std::to_string(c)) / (std::to_string(i) + ".jpg"), c, i,
            true);
    }
    for (int i = 0; i < 4; ++i) {
      image(dir / "woof/val" / ("n0" + std::to_string(c)) / (std::to_string(i) + ".jpg"), c, i,
            true);
    }
  }
  ExpandOptions o;
  o.smoke = true;
  o.sets = {{"pretrain.data.path", (dir / "pets").string()},
            {"data.path", (dir / "woof").string()}};
  Plan plan =
      expand(load_spec(normlab::testing::source_path("studies/s2_bn_transfer_folders.toml")), o);
  RunnerOptions ro = testing::runner(dir / "out");
  StudyResult r = run_study(plan, ro);
  ASSERT_EQ(r.failed, 0) << r.failures.front();
  EXPECT_EQ(r.completed, 6);
  auto db = store::Store::open((dir / "out/study.db").string(), {true, false});
  for (const auto& run : db->runs()) {
    SCOPED_TRACE(run.name);
    EXPECT_EQ(run.status, store::RunStatus::kComplete);
    if (run.name.rfind("pretrain", 0) == 0) continue;
    // val/ is the test split: 8 images, 2 classes.
    const auto test_acc = db->scalars(run.id, "epoch", "test/acc");
    ASSERT_EQ(test_acc.size(), 1u);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace normlab::study
