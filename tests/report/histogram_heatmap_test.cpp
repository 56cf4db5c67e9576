// Histogram names split into family / stage / item, and one name over time as the report's
// heatmap: fractions per bin, re-binning when the edges change, the axis with more points,
// and the notes and skips for what cannot be drawn.
#include "report/histogram_heatmap.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace normlab::report {
namespace {

store::HistogramPoint point(int64_t step, std::vector<double> edges, std::vector<int64_t> counts,
                            store::Axis axis = store::Axis::kStep) {
  store::HistogramPoint p;
  p.name = "grad_hist/pre/head.0.weight";
  p.axis = axis;
  p.step = step;
  p.hist.edges = std::move(edges);
  p.hist.counts = std::move(counts);
  for (int64_t c : p.hist.counts) p.hist.count += c;
  p.hist.min = p.hist.edges.front();
  p.hist.max = p.hist.edges.back();
  return p;
}

std::vector<const store::HistogramPoint*> pointers(const std::vector<store::HistogramPoint>& v) {
  std::vector<const store::HistogramPoint*> out;
  for (const auto& p : v) out.push_back(&p);
  return out;
}

TEST(HistogramName, SplitsFamilyStageAndItem) {
  auto n = split_histogram_name("grad_hist/pre/features.3.0.weight");
  EXPECT_EQ(n.family, "grad_hist");
  EXPECT_EQ(n.stage, "pre");
  EXPECT_EQ(n.item, "features.3.0.weight");
  n = split_histogram_name("weight_hist/head.0");
  EXPECT_EQ(n.family, "weight_hist");
  EXPECT_EQ(n.stage, "");
  EXPECT_EQ(n.item, "head.0");
  n = split_histogram_name("act_hist/middle/x");  // only pre and post are stages
  EXPECT_EQ(n.stage, "");
  EXPECT_EQ(n.item, "middle/x");
  EXPECT_EQ(split_histogram_name("solo").family, "solo");
  EXPECT_LT(stage_rank("pre"), stage_rank("post"));
  EXPECT_LT(stage_rank("post"), stage_rank(""));
}

TEST(HistogramHeatmap, ColumnsAreFractionsPerBin) {
  std::vector<store::HistogramPoint> pts = {point(0, {0, 1, 2}, {1, 3}),
                                            point(1, {0, 1, 2}, {2, 2})};
  std::vector<std::string> notes;
  auto plot = histogram_heatmap("run", pts[0].name, pointers(pts), &notes);
  ASSERT_FALSE(plot.is_null());
  EXPECT_TRUE(notes.empty());
  EXPECT_EQ(plot["axis"], "step");
  EXPECT_EQ(plot["x"], nlohmann::json({0.0, 1.0}));
  EXPECT_EQ(plot["y"], nlohmann::json({0.5, 1.5}));                  // bin centres
  EXPECT_EQ(plot["z"], nlohmann::json({{0.25, 0.5}, {0.75, 0.5}}));  // (bins, columns)
  EXPECT_DOUBLE_EQ(heatmap_z_max(plot), 0.75);
}

TEST(HistogramHeatmap, ChangingEdgesAreRebinnedWithANote) {
  std::vector<store::HistogramPoint> pts = {point(0, {0, 1, 2}, {4, 0}),
                                            point(1, {0, 2, 4}, {0, 4})};
  std::vector<std::string> notes;
  auto plot = histogram_heatmap("run", pts[0].name, pointers(pts), &notes);
  ASSERT_FALSE(plot.is_null());
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("re-binned onto 2 equal bins"), std::string::npos) << notes[0];
  // Common grid [0, 4] in 2 bins: step 0's mass (centre 0.5) and step 1's (centre 3) land in
  // the first and the second bin.
  EXPECT_EQ(plot["y"], nlohmann::json({1.0, 3.0}));
  EXPECT_EQ(plot["z"], nlohmann::json({{1.0, 0.0}, {0.0, 1.0}}));
}

TEST(HistogramHeatmap, DrawsTheAxisWithMorePointsAndSkipsScaleChanges) {
  std::vector<store::HistogramPoint> pts = {point(0, {0, 1}, {1}, store::Axis::kEpoch),
                                            point(0, {0, 1}, {1}), point(1, {0, 1}, {1})};
  std::vector<std::string> notes;
  auto plot = histogram_heatmap("run", pts[0].name, pointers(pts), &notes);
  ASSERT_FALSE(plot.is_null());
  EXPECT_EQ(plot["axis"], "step");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("per-epoch points are not shown"), std::string::npos) << notes[0];

  pts = {point(0, {0, 1}, {1}), point(1, {0, 1}, {1})};
  pts[1].hist.scale = "log10";
  notes.clear();
  EXPECT_TRUE(histogram_heatmap("run", pts[0].name, pointers(pts), &notes).is_null());
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("scale changes"), std::string::npos) << notes[0];
}

}  // namespace
}  // namespace normlab::report
