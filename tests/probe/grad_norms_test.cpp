// grad_norms against norms recomputed from the captured gradients.
#include <gtest/gtest.h>

#include <map>

#include "core/error.h"
#include "probe/selection.h"
#include "probe_fixture.h"

namespace normlab::probe {
namespace {
using namespace testing;

TEST(GradNorms, PreClipPerParameterAndPerLayerEveryStep) {
  ProbeRun run("grad_norms", {}, train::ClipOptions{1e-3, 0});  // heavy clipping
  auto rec = run.epoch();
  ASSERT_EQ(run.capture.raw.size(), 4u);
  const auto& names = run.capture.names;
  for (int64_t step = 0; step < 4; ++step) {
    std::map<std::string, double> layer_sq;
    for (size_t i = 0; i < names.size(); ++i) {
      const double n = run.capture.raw[step][i].norm().item<double>();
      layer_sq[layer_of(names[i])] += n * n;
      const auto* p = find_point(rec.step_scalars, "grad_norm/pre/" + names[i], step);
      ASSERT_NE(p, nullptr) << names[i];
      EXPECT_NEAR(p->value, n, 1e-6 * std::max(1.0, n)) << names[i];
      const double c = run.capture.clipped[step][i].norm().item<double>();
      const auto* q = find_point(rec.step_scalars, "grad_norm/post/" + names[i], step);
      ASSERT_NE(q, nullptr) << names[i];
      EXPECT_NEAR(q->value, c, 1e-6 * std::max(1.0, c)) << names[i];
    }
    for (const auto& [layer, sq] : layer_sq) {
      const auto* p = find_point(rec.step_scalars, "grad_norm/pre/" + layer, step);
      ASSERT_NE(p, nullptr) << layer;
      EXPECT_NEAR(p->value, std::sqrt(sq), 1e-5 * std::max(1.0, std::sqrt(sq))) << layer;
    }
    // The total pre-clip norm (recorded by the trainer) is the norm over every parameter.
    const auto* total = find_point(rec.step_scalars, "grad_norm/total", step);
    ASSERT_NE(total, nullptr);
    EXPECT_NEAR(total->value, run.capture.pre_norm[step].item<double>(), 1e-5);
    EXPECT_GT(total->value, 1e-3);  // before clipping
  }
  // Only trainable parameters are probed.
  for (const auto& r : rec.step_scalars) {
    EXPECT_EQ(r.name.find("grad_norm/pre/features.0"), std::string::npos) << r.name;
  }
}

TEST(GradNorms, NoPostClipSeriesWhenTheRunDoesNotClip) {
  ProbeRun run("grad_norms", {{"layers", false}});
  auto rec = run.epoch();
  int pre = 0;
  for (const auto& r : rec.step_scalars) {
    EXPECT_EQ(r.name.rfind("grad_norm/post/", 0), std::string::npos) << r.name;
    pre += r.name.rfind("grad_norm/pre/", 0) == 0;
  }
  EXPECT_EQ(pre, 4 * static_cast<int>(run.capture.names.size()));  // params only, 4 steps
}

TEST(GradNorms, PatternSelectionThatMatchesNothingIsRefusedWhenMade) {
  try {
    ProbeRun run("grad_norms", {{"params", {"haed"}}});
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("probe.grad_norms.params"), std::string::npos);
  }
}

}  // namespace
}  // namespace normlab::probe
