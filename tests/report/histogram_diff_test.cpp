// The difference panel of two configurations' histograms (report/histogram_diff.h): offered
// per family with two or more configurations, A and B preselected to different ones.
#include "report/histogram_diff.h"

#include <gtest/gtest.h>

namespace normlab::report {
namespace {

TEST(HistogramDiff, OnePanelPerFamilyWithTwoOrMoreConfigurations) {
  auto panel = [](const std::string& family, const std::string& group) {
    return nlohmann::json{{"family", family},
                          {"group", group},
                          {"run", group + " seed=0"},
                          {"stages", {""}},
                          {"items",
                           {{{"name", "conv1"}, {"plots", nlohmann::json::array()}},
                            {{"name", "fc"}, {"plots", nlohmann::json::array()}}}}};
  };
  const nlohmann::json panels = {panel("grad_hist", "bn"), panel("weight_hist", "freeze"),
                                 panel("weight_hist", "freeze-non-bn")};
  const std::string html = histogram_diff_sections(panels);
  EXPECT_EQ(html.find("grad_hist"), std::string::npos);  // one configuration: nothing to compare
  EXPECT_NE(html.find("weight_hist: difference A &minus; B"), std::string::npos) << html;
  EXPECT_NE(html.find("<select id=\"histdiff-0-a\"><option value=\"1\">freeze</option>"),
            std::string::npos)
      << html;
  EXPECT_NE(html.find("<option value=\"2\" selected>freeze-non-bn</option>"), std::string::npos)
      << html;
  EXPECT_NE(html.find("<option value=\"fc\">fc</option>"), std::string::npos);
  EXPECT_NE(html.find("id=\"histdiff-0\""), std::string::npos);
  EXPECT_EQ(histogram_diff_sections(nlohmann::json::array()), "");
}

}  // namespace
}  // namespace normlab::report
