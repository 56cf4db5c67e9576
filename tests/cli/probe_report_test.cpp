// From a probe's real output to the report's data: a study with the landscape and the
// histogram probes runs in-process, and the report must show exactly what the probes stored
// (the landscape with z rows = beta, as the probe wrote them: a transpose fails here).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "report/report.h"
#include "store/store.h"
#include "study/runner.h"
#include "study/spec.h"

namespace normlab {
namespace {

namespace fs = std::filesystem;

const char* kStudy = R"toml(
[study]
name = "probe report"
seeds = [0]

[run]
data = { dataset = "synthetic", synthetic = { size = 96, classes = 3, hw = 8 } }
model = { backbone = "small_cnn", width = 4, depth = 2, head = { kind = "mlp", hidden = 8 } }
train = { epochs = 2, batch_size = 16, trainable = ["features.1", "head"], clip_norm = 0.01 }
probe.landscape = { enabled = true, params = "head", resolution = 5, batches = 1 }
probe.grad_hist = { enabled = true }
probe.clip = { enabled = true }
)toml";

TEST(ProbeReport, LandscapeAndHistogramsReachTheReportAsStored) {
  fs::path dir = fs::temp_directory_path() / ("normlab_probe_report_" + std::to_string(getpid()));
  fs::remove_all(dir);
  study::RunnerOptions ro;
  ro.out_dir = dir.string();
  ro.threads = 1;
  ro.progress = false;
  auto result = study::run_study(study::expand(study::parse_spec(kStudy, "probe.toml"), {}), ro);
  ASSERT_EQ(result.failed, 0) << (result.failures.empty() ? "" : result.failures.front());

  auto db = store::Store::open((dir / "study.db").string(), {true, false});
  auto runs = db->runs();
  ASSERT_EQ(runs.size(), 1u);
  auto surfaces = db->surfaces(runs[0].id, "landscape");
  ASSERT_EQ(surfaces.size(), 1u);
  const store::Surface& s = surfaces[0].surface;
  EXPECT_EQ(surfaces[0].epoch, 1);  // written with the run's last epoch
  ASSERT_EQ(s.z.size(), 5u);

  auto data = report::report_data(*db);
  ASSERT_EQ(data["surfaces"].size(), 1u);
  const auto& r = data["surfaces"][0];
  EXPECT_EQ(r["x_label"], "alpha");
  EXPECT_EQ(r["y_label"], "beta");
  ASSERT_EQ(r["z"].size(), s.y.size());
  bool asymmetric = false;
  for (size_t i = 0; i < s.y.size(); ++i) {
    EXPECT_DOUBLE_EQ(r["y"][i].get<double>(), s.y[i]);
    for (size_t j = 0; j < s.x.size(); ++j) {
      // The report keeps 5 significant digits.
      EXPECT_NEAR(r["z"][i][j].get<double>(), s.z[i][j], 1e-4 * std::fabs(s.z[i][j]))
          << i << "," << j;
      asymmetric = asymmetric || std::fabs(s.z[i][j] - s.z[j][i]) > 1e-3 * std::fabs(s.z[i][j]);
    }
  }
  EXPECT_TRUE(asymmetric);  // else a transpose would go unnoticed

  // Pre- and post-clip gradient histograms of every epoch are in the store and the report.
  auto hists = db->histograms(runs[0].id, "grad_hist/");
  int pre = 0, post = 0;
  for (const auto& h : hists) {
    pre += h.name.rfind("grad_hist/pre/", 0) == 0;
    post += h.name.rfind("grad_hist/post/", 0) == 0;
  }
  EXPECT_GT(pre, 0);
  EXPECT_EQ(pre, post);
  ASSERT_FALSE(data["histograms"].empty());
  EXPECT_EQ(data["histograms"][0]["family"], "grad_hist");
  EXPECT_EQ(db->scalars(runs[0].id, store::Axis::kEpoch, "clip/fraction").size(), 2u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace normlab
