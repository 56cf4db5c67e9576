// Runs an older normlab recorded are continued after an upgrade (study/adopt.h): a config key
// added since (with its default) must not make a complete run train again or an interrupted
// one start over.
#include "study/adopt.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/files.h"
#include "store/store.h"
#include "study/run_paths.h"
#include "study/runner.h"
#include "study/spec.h"
#include "study_dirs.h"

namespace normlab::study {
namespace {

const char* kStudy = R"toml(
[study]
name = "upgrade"
seeds = [0]

[run]
data = { dataset = "synthetic", synthetic = { size = 64, classes = 3, hw = 8 }, val_fraction = 0.25 }
model = { backbone = "small_cnn", width = 4, depth = 2, head = { hidden = 8 } }
train = { epochs = 1, batch_size = 16 }

[grid]
"model.head.norm" = ["bn", "ln"]
)toml";

TEST(Adopt, AnUpgradeContinuesTheRunsAnOlderVersionRecorded) {
  const auto dir = testing::fresh_dir("adopt");
  Plan plan = expand(parse_spec(kStudy, "upgrade.toml"), {});
  ASSERT_EQ(plan.runs.size(), 2u);
  // As an older normlab recorded them: without keys added since (phases, train.val_every).
  std::vector<std::string> old_hashes;
  {
    std::filesystem::create_directories(dir);
    auto db = store::Store::open((dir / "study.db").string());
    for (const auto& r : plan.runs) {
      Json old = r.config;
      old.erase("phases");
      old["train"].erase("val_every");
      const auto record = db->upsert_run(r.name, r.group, canonical_text(old), 0);
      old_hashes.push_back(record.config_hash);
      // The bn run completed; the ln run had not started.
      if (r.name == "norm=bn seed=0") {
        db->set_status(record.id, store::RunStatus::kComplete);
        const auto paths = RunPaths::of(dir.string(), record.config_hash);
        std::filesystem::create_directories(paths.dir);
        std::ofstream(paths.final_weights()) << "weights of the old run";
      }
    }
  }
  StudyResult r = run_study(plan, testing::runner(dir));
  EXPECT_EQ(r.failed, 0);
  EXPECT_EQ(r.skipped, 1);    // the complete bn run is not trained again
  EXPECT_EQ(r.completed, 1);  // the ln run trains (once)
  auto db = store::Store::open((dir / "study.db").string(), {true, false});
  const auto runs = db->runs();
  ASSERT_EQ(runs.size(), 2u);  // no second record of either configuration
  for (const auto& run : runs) {
    EXPECT_EQ(run.config_hash, sha256_hex(run.config_json)) << run.name;
    EXPECT_EQ(run.status, store::RunStatus::kComplete) << run.name;
  }
  // The old run's directory moved with it.
  const auto bn = std::find_if(runs.begin(), runs.end(),
                               [](const auto& x) { return x.name == "norm=bn seed=0"; });
  EXPECT_EQ(read_file_text(RunPaths::of(dir.string(), bn->config_hash).final_weights()),
            "weights of the old run");
  EXPECT_FALSE(std::filesystem::exists(RunPaths::of(dir.string(), old_hashes[0]).dir));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace normlab::study
