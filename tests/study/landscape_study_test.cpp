// Landscapes through the study engine for every head kind x norm (seed 000's authors could not
// draw one for their FRN head): with only the head moving the frozen prefix runs once per
// landscape, and the centre of the 2-D landscape and the end of the 1-D interpolation are the
// loss of the final weights, which the engine's own validation also measured.
#include <gtest/gtest.h>

#include <cmath>

#include "store/store.h"
#include "study/runner.h"
#include "study/spec.h"
#include "study_dirs.h"

namespace normlab::study {
namespace {

const char* kHeads = R"toml(
[study]
name = "landscape heads"
seeds = [0]

[run]
data = { dataset = "synthetic", synthetic = { size = 120, classes = 3, hw = 8 }, val_fraction = 0.25 }
model = { backbone = "small_cnn", width = 4, depth = 2, head = { hidden = 8 } }
train = { epochs = 2, batch_size = 16, trainable = ["head"] }
probe.landscape = { enabled = true, params = "head", resolution = 3, span = 0.5, batches = 0, epochs = [0] }
probe.interpolation = { enabled = true, points = 3, range = [0.0, 1.0], batches = 0 }

[grid]
"model.head.kind" = ["linear", "mlp", "norm_mlp"]
"model.head.norm" = ["bn", "ln", "frn", "none"]

[[grid.include]]
name = "mobilenet_v2 frn head"
data.synthetic = { size = 120, classes = 3, hw = 32 }
model = { backbone = "mobilenet_v2", width_mult = 0.35, head = { kind = "mlp", norm = "frn", hidden = 8 } }
)toml";

TEST(LandscapeStudy, EveryHeadKindAndNormDrawsLandscapesCentredOnTheFinalLoss) {
  const auto dir = testing::fresh_dir("landscape_heads");
  auto plan = expand(parse_spec(kHeads, "heads.toml"), {});
  ASSERT_EQ(plan.runs.size(), 13u);
  StudyResult result = run_study(plan, testing::runner(dir));
  ASSERT_EQ(result.failed, 0) << (result.failures.empty() ? "" : result.failures.front());

  auto db = store::Store::open((dir / "study.db").string(), {true, false});
  for (const auto& run : db->runs()) {
    double val_loss = NAN;
    for (const auto& p : db->scalars(run.id, "epoch")) {
      if (p.name == "val/loss" && p.step == 1) val_loss = p.value;
    }
    ASSERT_TRUE(std::isfinite(val_loss)) << run.name;
    auto land = db->surfaces(run.id, "landscape");
    ASSERT_EQ(land.size(), 1u) << run.name;
    const store::Surface& s = land[0].surface;
    ASSERT_EQ(s.z.size(), 3u) << run.name;
    for (const auto& row : s.z) {
      for (double z : row) EXPECT_TRUE(std::isfinite(z)) << run.name;
    }
    EXPECT_NEAR(s.z[1][1], val_loss, 1e-4 * val_loss) << run.name;
    EXPECT_EQ(db->surfaces(run.id, "landscape/init").size(), 1u) << run.name;
    auto line = db->surfaces(run.id, "interpolation");
    ASSERT_EQ(line.size(), 1u) << run.name;
    EXPECT_NEAR(line[0].surface.z[0][2], val_loss, 1e-4 * val_loss) << run.name;
    // Heads with a norm that keeps running statistics draw the second curve differently.
    auto kept = db->surfaces(run.id, "interpolation/final_stats");
    ASSERT_EQ(kept.size(), 1u) << run.name;
    EXPECT_NEAR(kept[0].surface.z[0][2], val_loss, 1e-4 * val_loss) << run.name;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace normlab::study
