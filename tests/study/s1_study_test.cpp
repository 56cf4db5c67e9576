// studies/s1_heads_clip_lr.toml (STUDIES.md S1): heads x experiments E1-E3 plus the two
// appendix sweeps in one file; the main grid of a seed shares one frozen trunk; the smoke
// variant records what the seed's figures need (the second Linear's gradient histograms,
// head-only landscapes at several epochs, the interpolation line).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "cli/run_normlab.h"
#include "store/store.h"
#include "study/prefix_key.h"
#include "study/runner.h"
#include "study/spec.h"
#include "study/study_dirs.h"

namespace normlab::study {
namespace {

namespace fs = std::filesystem;

Spec s1_spec() { return load_spec(normlab::testing::source_path("studies/s1_heads_clip_lr.toml")); }

TEST(S1Study, OneFileHoldsTheExperimentsAndBothAppendixSweeps) {
  Plan plan = expand(s1_spec(), {});
  ASSERT_EQ(plan.runs.size(), (12u + 4u + 4u) * 3u);
  EXPECT_TRUE(plan.same_runs.empty());
  std::map<std::string, std::set<std::string>> group_keys;  // experiment group -> lockstep keys
  std::set<std::string> configs;
  for (const auto& r : plan.runs) {
    const Json& c = r.config;
    configs.insert(r.group);
    EXPECT_EQ(c["train"]["trainable"], Json::array({"head"})) << r.name;
    const double lr = c["train"]["optimizer"]["lr"].get<double>();
    const double clip = c["train"]["clip_norm"].get<double>();
    const std::string norm = c["model"]["head"]["norm"].get<std::string>();
    if (r.group.rfind("experiment=E1", 0) == 0) {
      EXPECT_TRUE(lr == 1e-3 && clip == 0) << r.name;
    }
    if (r.group.rfind("experiment=E2", 0) == 0) {
      EXPECT_TRUE(lr == 1e-3 && clip == 1.0) << r.name;
    }
    if (r.group.rfind("experiment=E3", 0) == 0) {
      EXPECT_TRUE(lr == 1e-2 && clip == 0) << r.name;
    }
    if (r.group.rfind("lr_sweep:", 0) == 0) {
      EXPECT_EQ(norm, "none") << r.name;
    }
    if (r.group.rfind("batch_sweep:", 0) == 0) {
      EXPECT_EQ(norm, "bn") << r.name;
      EXPECT_DOUBLE_EQ(lr, 1e-3) << r.name;
    }
    if (r.group.rfind("experiment=", 0) == 0) {
      group_keys["seed " + std::to_string(c["seed"].get<int64_t>())].insert(group_key(c));
    }
  }
  EXPECT_EQ(configs.size(), 20u);
  // The 12 heads x experiments of a seed train in one lockstep group over one frozen trunk.
  ASSERT_EQ(group_keys.size(), 3u);
  for (const auto& [seed, keys] : group_keys) EXPECT_EQ(keys.size(), 1u) << seed;
}

TEST(S1Study, SmokeRecordsHistogramsLandscapesAndInterpolation) {
  ExpandOptions o;
  o.smoke = true;
  Plan plan = expand(s1_spec(), o);
  ASSERT_EQ(plan.runs.size(), 14u);
  const fs::path dir = testing::fresh_dir("s1_smoke");
  StudyResult r = run_study(plan, testing::runner(dir));
  ASSERT_EQ(r.failed, 0) << r.failures.front();
  auto db = store::Store::open((dir / "study.db").string(), {true, false});
  for (const auto& run : db->runs()) {
    SCOPED_TRACE(run.name);
    EXPECT_EQ(run.status, store::RunStatus::kComplete) << run.error;
    // The second Linear layer of the head, per epoch: its weight, its bias and the layer.
    const auto hists = db->histograms(run.id, "grad_hist/");
    EXPECT_FALSE(hists.empty());
    for (const auto& h : hists) EXPECT_NE(h.name.find("/head.4"), std::string::npos) << h.name;
    EXPECT_EQ(db->surfaces(run.id, "landscape/init").size(), 1u);
    EXPECT_EQ(db->surfaces(run.id, "landscape/epoch").size(), 1u);
    EXPECT_EQ(db->surfaces(run.id, "landscape").size(), 1u);
    const auto line = db->surfaces(run.id, "interpolation");
    ASSERT_EQ(line.size(), 1u);
    EXPECT_EQ(line[0].surface.x.size(), 5u);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace normlab::study
