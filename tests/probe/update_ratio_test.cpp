// update_ratio against ||w_after - w_before|| / ||w_before|| from the captured weights.
#include <gtest/gtest.h>

#include <map>

#include "probe/selection.h"
#include "probe_fixture.h"

namespace normlab::probe {
namespace {
using namespace testing;

TEST(UpdateRatio, PerLayerRatioEveryStepAndOutOfBandFraction) {
  ProbeRun run("update_ratio", {{"low", 1e-3}, {"high", 2e-2}});
  auto rec = run.epoch();
  const auto& names = run.capture.names;
  std::map<std::string, double> out_of_band;
  for (int64_t step = 0; step < 4; ++step) {
    std::map<std::string, std::pair<double, double>> sq;  // layer -> (|dw|^2, |w|^2)
    for (size_t i = 0; i < names.size(); ++i) {
      auto& s = sq[layer_of(names[i])];
      s.first += std::pow((run.capture.after[step][i] - run.capture.before[step][i])
                              .to(torch::kDouble)
                              .norm()
                              .item<double>(),
                          2);
      s.second += std::pow(run.capture.before[step][i].to(torch::kDouble).norm().item<double>(), 2);
    }
    for (const auto& [layer, s] : sq) {
      const double ratio = std::sqrt(s.first) / std::sqrt(s.second);
      const auto* p = find_point(rec.step_scalars, "update_ratio/" + layer, step);
      ASSERT_NE(p, nullptr) << layer;
      EXPECT_NEAR(p->value, ratio, 1e-5 * ratio) << layer;
      out_of_band[layer] += (ratio < 1e-3 || ratio > 2e-2) ? 0.25 : 0.0;
    }
  }
  for (const auto& [layer, frac] : out_of_band) {
    const auto* p = find_point(rec.epoch_scalars, "update_ratio_flag/" + layer, 0);
    ASSERT_NE(p, nullptr) << layer;
    EXPECT_DOUBLE_EQ(p->value, frac) << layer;
  }
}

}  // namespace
}  // namespace normlab::probe
