// The line between two runs' final weights (study/run_interpolation.h): its ends are the two
// runs' own validation losses; bad requests name the run or the reason; the CLI prints it.
#include "study/run_interpolation.h"

#include <gtest/gtest.h>

#include <cmath>

#include "cli/run_normlab.h"
#include "core/error.h"
#include "core/files.h"
#include "error_of.h"
#include "store/store.h"
#include "study/runner.h"
#include "study/spec.h"
#include "study_dirs.h"

namespace normlab::study {
namespace {

const char* kTwoSeeds = R"toml(
[study]
name = "two seeds"
seeds = [0, 1]

[run]
data = { dataset = "synthetic", synthetic = { size = 100, classes = 3, hw = 8 }, val_fraction = 0.2 }
model = { backbone = "small_cnn", width = 4, depth = 2, head = { hidden = 8, dropout = 0.0 } }
train = { epochs = 2, batch_size = 16 }

[grid]
"model.head.norm" = ["bn", "ln"]
)toml";

using normlab::testing::error_of;

TEST(RunInterpolation, EndsAreTheRunsValidationLosses) {
  const auto dir = testing::fresh_dir("run_interpolation");
  StudyResult r = run_study(expand(parse_spec(kTwoSeeds, "two.toml"), {}), testing::runner(dir));
  ASSERT_EQ(r.failed, 0);
  std::map<std::string, double> val_loss;
  {
    auto db = store::Store::open((dir / "study.db").string(), {true, false});
    for (const auto& run : db->runs()) {
      val_loss[run.name] = db->scalars(run.id, "epoch", "val/loss").back().value;
    }
  }
  RunInterpolationOptions o;
  o.study_dir = dir.string();
  o.from = "norm=bn seed=0";
  o.to = "norm=bn seed=1";
  o.points = 3;
  o.lo = 0;
  o.hi = 1;
  o.images = 0;  // the whole validation split, as the runs' own evaluation
  const RunInterpolation line = interpolate_runs(o);
  ASSERT_EQ(line.interpolated.z[0].size(), 3u);
  EXPECT_NEAR(line.interpolated.z[0][0], val_loss.at(o.from), 1e-5 * val_loss.at(o.from));
  EXPECT_NEAR(line.interpolated.z[0][2], val_loss.at(o.to), 1e-5 * val_loss.at(o.to));
  EXPECT_NEAR(line.a_stats.z[0][0], val_loss.at(o.from), 1e-5 * val_loss.at(o.from));
  // With A's BN statistics, B's parameters give another loss than B's own.
  EXPECT_GT(std::fabs(line.a_stats.z[0][2] - val_loss.at(o.to)), 1e-6);

  // Requests that cannot be served name the run or the reason.
  RunInterpolationOptions bad = o;
  bad.to = "seed=1";
  EXPECT_NE(error_of([&] { interpolate_runs(bad); }).find("matches 2 runs"), std::string::npos);
  bad.to = "norm=gn";
  EXPECT_NE(error_of([&] { interpolate_runs(bad); }).find("matches no run"), std::string::npos);
  bad.study_dir = (dir / "nope").string();
  EXPECT_NE(error_of([&] { interpolate_runs(bad); }).find("has no study.db"), std::string::npos);

  // The command prints the table and writes the JSON.
  const std::string json = (dir / "line.json").string();
  auto cli = normlab::testing::run_normlab("study interpolate " + dir.string() +
                                           " 'norm=ln seed=0' 'norm=ln seed=1' --points 5 "
                                           "--threads 1 --json " +
                                           json);
  ASSERT_EQ(cli.code, 0) << cli.output;
  EXPECT_NE(cli.output.find("interpolated"), std::string::npos) << cli.output;
  const auto parsed = nlohmann::json::parse(read_file_text(json));
  EXPECT_EQ(parsed["t"].size(), 5u);
  EXPECT_DOUBLE_EQ(parsed["t"][0].get<double>(), -0.5);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace normlab::study
