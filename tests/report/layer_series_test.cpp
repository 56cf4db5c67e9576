#include "report/layer_series.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace normlab::report {
namespace {

TEST(LayerSeries, PerLayerNamesHaveATwoPartFamily) {
  EXPECT_TRUE(per_layer_name("esm/mu/features.2.1"));
  EXPECT_TRUE(per_layer_name("dmbn/beta/layer1.0.bn2"));
  EXPECT_FALSE(per_layer_name("esm/mu_sum"));
  EXPECT_FALSE(per_layer_name("test/acc"));
  EXPECT_FALSE(per_layer_name("lr"));
}

TEST(LayerSeries, SeedMeanAndStdPerLayerInNaturalOrder) {
  // Two seeds of one configuration, three layers whose names sort wrongly as text.
  EpochSeries a, b, other;
  const std::vector<std::pair<std::string, double>> layers = {
      {"features.10.1", 10}, {"features.2.1", 2}, {"features.1.1", 1}};
  for (const auto& [layer, base] : layers) {
    a["esm/mu/" + layer] = {{0, base}, {1, base + 1}};
    b["esm/mu/" + layer] = {{0, base + 2}, {1, base + 3}};
  }
  a["test/acc"] = {{1, 0.5}};  // not per layer: ignored here
  other["dmbn/beta/features.1.1"] = {{0, 0.3}};
  const auto out = layer_series({{"bn", {&a, &b}}, {"dmbn", {&other}}});
  ASSERT_EQ(out.size(), 2u);  // families in name order: dmbn/beta, esm/mu
  EXPECT_EQ(out[0]["family"], "dmbn/beta");
  const auto& esm = out[1];
  EXPECT_EQ(esm["family"], "esm/mu");
  EXPECT_EQ(esm["layers"], (nlohmann::json{"features.1.1", "features.2.1", "features.10.1"}));
  // Layers 2 and 19 by default; with three layers, the second and the last.
  EXPECT_EQ(esm["defaults"], (nlohmann::json{1, 2}));
  ASSERT_EQ(esm["groups"].size(), 1u);  // the dmbn configuration has no esm series
  const auto& g = esm["groups"][0];
  EXPECT_EQ(g["name"], "bn");
  EXPECT_EQ(g["n"], 2);
  EXPECT_EQ(g["epochs"], (nlohmann::json{0, 1}));
  // features.10.1: seeds (10, 12) at epoch 0 and (11, 13) at epoch 1.
  EXPECT_DOUBLE_EQ(g["mean"][2][0].get<double>(), 11.0);
  EXPECT_DOUBLE_EQ(g["mean"][2][1].get<double>(), 12.0);
  EXPECT_NEAR(g["sd"][2][0].get<double>(), std::sqrt(2.0), 1e-4);
  EXPECT_DOUBLE_EQ(g["mean"][0][0].get<double>(), 2.0);  // features.1.1: (1, 3)
}

TEST(LayerSeries, SectionsOfferEveryLayerAndConfiguration) {
  EpochSeries a;
  a["esm/sigma/l.1"] = {{0, 1.0}};
  a["esm/sigma/l.2"] = {{0, 2.0}};
  const auto data = layer_series({{"cfg <1>", {&a}}});
  const std::string html = layer_series_sections(data);
  EXPECT_NE(html.find("id=\"layers-0-select-0\""), std::string::npos);
  EXPECT_NE(html.find("id=\"layers-0-select-1\""), std::string::npos);
  EXPECT_NE(html.find("id=\"layers-0-heat\""), std::string::npos);
  EXPECT_NE(html.find("2: l.2"), std::string::npos);
  EXPECT_NE(html.find("cfg &lt;1&gt;"), std::string::npos);  // escaped
}

}  // namespace
}  // namespace normlab::report
