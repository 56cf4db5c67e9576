// The report's surfaces: 2-D landscapes (contour + 3-D), 1-D curves, and every epoch of a
// surface recorded at several (report/surfaces.h).
#include <gtest/gtest.h>

#include "report/surfaces.h"

namespace normlab::report {
namespace {

store::Surface grid(double offset, size_t rows) {
  store::Surface s;
  s.x_label = rows == 1 ? "t" : "alpha";
  s.y_label = rows == 1 ? "" : "beta";
  s.x = {-1.0, 0.0, 1.0};
  for (size_t i = 0; i < rows; ++i) {
    s.y.push_back(rows == 1 ? 0.0 : static_cast<double>(i));
    s.z.push_back({offset + 10.0 * i, offset + 10.0 * i + 1, offset + 10.0 * i + 2});
  }
  return s;
}

TEST(Surfaces, EveryEpochOfANameOnOneEntryAndCurvesAreCurves) {
  RunSurfaces run{"norm=bn", "norm=bn seed=0", {}};
  run.records.push_back({"landscape/epoch", 4, grid(400, 2)});
  run.records.push_back({"landscape/epoch", 0, grid(0, 2)});
  run.records.push_back({"interpolation", 4, grid(7, 1)});
  run.records.push_back({"landscape/epoch", 2, grid(200, 2)});
  const auto data = surface_data({run});
  ASSERT_EQ(data.size(), 2u);  // by name: interpolation, landscape/epoch
  const auto& curve = data[0];
  EXPECT_EQ(curve["name"], "interpolation");
  EXPECT_EQ(curve["kind"], "curve");
  EXPECT_EQ(curve["z"], nlohmann::json({{7.0, 8.0, 9.0}}));
  const auto& land = data[1];
  EXPECT_EQ(land["kind"], "surface");
  EXPECT_EQ(land["epoch"], 4);  // the last epoch is the default view
  EXPECT_EQ(land["epochs"], nlohmann::json({0, 2, 4}));
  ASSERT_EQ(land["z_by_epoch"].size(), 3u);
  EXPECT_EQ(land["z_by_epoch"][1][0][0], 200.0);
  EXPECT_EQ(land["z"], land["z_by_epoch"][2]);

  const std::string html = surface_sections(data);
  EXPECT_NE(html.find("id=\"surface-1-epoch\""), std::string::npos);
  EXPECT_NE(html.find("id=\"surface-1-3d\""), std::string::npos);
  EXPECT_EQ(html.find("id=\"surface-0-3d\""), std::string::npos);  // a curve has no 3-D plot
  EXPECT_EQ(html.find("id=\"surface-0-epoch\""), std::string::npos);
  // Epochs are shown 1-based, the last selected.
  EXPECT_NE(html.find("<option value=\"2\" selected>5</option>"), std::string::npos) << html;
}

}  // namespace
}  // namespace normlab::report
