// weight_hist against histograms and variances recomputed from the captured weights.
#include <gtest/gtest.h>

#include <map>

#include "probe/selection.h"
#include "probe_fixture.h"
#include "reference_histogram.h"

namespace normlab::probe {
namespace {
using namespace testing;
using normlab::testing::ReferenceHistogram;

torch::Tensor layer_weights(const std::vector<torch::Tensor>& ws,
                            const std::vector<std::string>& names, const std::string& layer) {
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i < names.size(); ++i) {
    if (layer_of(names[i]) == layer) parts.push_back(ws[i].reshape({-1}));
  }
  return torch::cat(parts);
}

TEST(WeightHist, EveryMinibatchHistogramVarianceAndItsChange) {
  ProbeRun run("weight_hist", {{"params", {"head"}}});
  auto rec = run.epoch();
  const auto& names = run.capture.names;
  std::vector<std::string> layers;
  for (const auto& n : names) {
    if (n.rfind("head", 0) == 0 &&
        std::find(layers.begin(), layers.end(), layer_of(n)) == layers.end()) {
      layers.push_back(layer_of(n));
    }
  }
  ASSERT_GE(layers.size(), 2u);
  int64_t hists = 0;
  for (int64_t step = 0; step < 4; ++step) {
    for (const auto& layer : layers) {
      torch::Tensor after = layer_weights(run.capture.after[step], names, layer);
      torch::Tensor before = layer_weights(run.capture.before[step], names, layer);
      ReferenceHistogram r(-1.0, 1.0, 40, false);
      r.add(after);
      bool found = false;
      for (const auto& h : rec.histograms) {
        if (h.name == "weight_hist/" + layer && h.step == step) {
          EXPECT_EQ(h.axis, store::Axis::kStep);
          r.expect_equal(h.hist, layer);
          found = true;
          ++hists;
        }
      }
      EXPECT_TRUE(found) << layer << " step " << step;
      const double va = after.to(torch::kDouble).var(false).item<double>();
      const double vb = before.to(torch::kDouble).var(false).item<double>();
      const auto* v = find_point(rec.step_scalars, "weight_var/" + layer, step);
      const auto* d = find_point(rec.step_scalars, "weight_var_delta/" + layer, step);
      ASSERT_TRUE(v != nullptr && d != nullptr) << layer;
      EXPECT_NEAR(v->value, va, 1e-5 * va);
      EXPECT_NEAR(d->value, va - vb, 1e-3 * std::fabs(va - vb) + 1e-7 * va);
      EXPECT_NE(d->value, 0.0);  // the step changed the weights
    }
  }
  EXPECT_EQ(hists, 4 * static_cast<int64_t>(layers.size()));
}

}  // namespace
}  // namespace normlab::probe
