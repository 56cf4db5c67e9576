// Per-step curves (report/step_curves.h): the mean over a configuration's seeds at each step,
// the metrics that were recorded, and the page's smoothing control.
#include "report/step_curves.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

namespace normlab::report {
namespace {

namespace fs = std::filesystem;

TEST(StepCurves, MeanOverSeedsPerStepForTheRecordedMetrics) {
  std::random_device rd;
  const fs::path dir = fs::temp_directory_path() / ("normlab_step_curves_" + std::to_string(rd()));
  fs::create_directories(dir);
  {
    auto db = store::Store::open((dir / "study.db").string());
    std::vector<int64_t> ids;
    for (int64_t seed = 0; seed < 2; ++seed) {
      auto run = db->upsert_run("bn,seed=" + std::to_string(seed), "bn",
                                R"({"seed":)" + std::to_string(seed) + "}", seed);
      store::EpochRecords r;
      for (int64_t step = 0; step < 4; ++step) {
        r.step_scalars.push_back({"train/loss", step, static_cast<double>(step + seed)});
        if (step % 2 == 1) r.step_scalars.push_back({"step_val/loss", step, 10.0 * seed});
        r.step_scalars.push_back({"weight_var_delta/conv1", step, 1.0 * seed});
        r.step_scalars.push_back({"weight_var_delta/fc", step, 2.0 + seed});
      }
      db->write_epoch(run.id, 0, r);
      ids.push_back(run.id);
    }
    const std::vector<GroupRuns> groups = {{"bn", 3, ids}};
    const auto curves = step_curves(*db, groups, 1000);
    ASSERT_EQ(curves.size(), 2u);  // train/loss, step_val/loss; no step_val/acc recorded
    EXPECT_EQ(curves[0]["metric"], "train/loss");
    EXPECT_EQ(curves[1]["metric"], "step_val/loss");
    const auto& loss = curves[0]["groups"][0];
    EXPECT_EQ(loss["index"], 3);
    EXPECT_EQ(loss["x"], nlohmann::json({0.0, 1.0, 2.0, 3.0}));
    EXPECT_EQ(loss["y"], nlohmann::json({0.5, 1.5, 2.5, 3.5}));
    EXPECT_EQ(curves[1]["groups"][0]["x"], nlohmann::json({1.0, 3.0}));
    EXPECT_EQ(curves[1]["groups"][0]["y"], nlohmann::json({5.0, 5.0}));
    // Downsampled: buckets of two consecutive steps averaged.
    const auto coarse = step_series(*db, groups, "train/loss", 2);
    EXPECT_EQ(coarse[0]["x"], nlohmann::json({0.5, 2.5}));
    EXPECT_EQ(coarse[0]["y"], nlohmann::json({1.0, 3.0}));

    // Per-layer families: each configuration's mean per layer and step, in layer order.
    const auto layers = step_layer_curves(*db, groups, 1000);
    ASSERT_EQ(layers.size(), 1u);  // weight_var_delta; weight_var was not recorded
    EXPECT_EQ(layers[0]["family"], "weight_var_delta");
    EXPECT_EQ(layers[0]["layers"], nlohmann::json({"conv1", "fc"}));
    EXPECT_EQ(layers[0]["groups"][0]["y"][0], nlohmann::json({0.5, 0.5, 0.5, 0.5}));
    EXPECT_EQ(layers[0]["groups"][0]["y"][1], nlohmann::json({2.5, 2.5, 2.5, 2.5}));

    const std::string html = step_curve_sections(curves, layers);
    EXPECT_NE(html.find("id=\"step-smoothing\""), std::string::npos);
    EXPECT_NE(html.find("id=\"step-curve-1\""), std::string::npos);
    EXPECT_NE(html.find("<option value=\"1\">2: fc</option>"), std::string::npos) << html;
    EXPECT_EQ(step_curve_sections(nlohmann::json::array(), nlohmann::json::array()), "");
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace normlab::report
