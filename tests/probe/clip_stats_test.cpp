// The clip probe against the captured pre-clip norms and clipped gradients.
#include <gtest/gtest.h>

#include "probe_fixture.h"

namespace normlab::probe {
namespace {
using namespace testing;

double norm_of(const std::vector<torch::Tensor>& grads) {
  double sq = 0;
  for (const auto& g : grads) sq += std::pow(g.norm().item<double>(), 2);
  return std::sqrt(sq);
}

TEST(ClipProbe, FractionClippedAndPostClipNorms) {
  // A threshold between the steps' norms, so that some steps clip and others do not.
  ProbeRun probe_run("clip", {});
  probe_run.epoch();
  std::vector<double> norms;
  for (const auto& n : probe_run.capture.pre_norm) norms.push_back(n.item<double>());
  std::vector<double> sorted = norms;
  std::sort(sorted.begin(), sorted.end());
  const double threshold = 0.5 * (sorted[1] + sorted[2]);

  ProbeRun run("clip", {}, train::ClipOptions{threshold, 0});
  auto rec = run.epoch();
  double clipped = 0, pre_sum = 0, post_sum = 0;
  for (int64_t step = 0; step < 4; ++step) {
    const double pre = run.capture.pre_norm[step].item<double>();
    const double post = norm_of(run.capture.clipped[step]);
    clipped += pre > threshold;
    pre_sum += pre;
    post_sum += post;
    EXPECT_LE(post, threshold * (1 + 1e-5));
    const auto* p = find_point(rec.step_scalars, "clip/post_norm", step);
    ASSERT_NE(p, nullptr);
    EXPECT_NEAR(p->value, post, 1e-5 * post);
  }
  EXPECT_EQ(clipped, 2);
  const auto* f = find_point(rec.epoch_scalars, "clip/fraction", 0);
  const auto* pre = find_point(rec.epoch_scalars, "clip/pre_norm_mean", 0);
  const auto* post = find_point(rec.epoch_scalars, "clip/post_norm_mean", 0);
  ASSERT_TRUE(f != nullptr && pre != nullptr && post != nullptr);
  EXPECT_DOUBLE_EQ(f->value, 0.5);
  EXPECT_NEAR(pre->value, pre_sum / 4, 1e-5 * pre_sum);
  EXPECT_NEAR(post->value, post_sum / 4, 1e-5 * post_sum);
}

TEST(ClipProbe, NothingClippedWithoutClipping) {
  ProbeRun run("clip", {});
  auto rec = run.epoch();
  const auto* f = find_point(rec.epoch_scalars, "clip/fraction", 0);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->value, 0.0);
  const auto* p = find_point(rec.step_scalars, "clip/post_norm", 1);
  ASSERT_NE(p, nullptr);
  EXPECT_NEAR(p->value, run.capture.pre_norm[1].item<double>(), 1e-5);
}

}  // namespace
}  // namespace normlab::probe
