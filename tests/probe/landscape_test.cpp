// The loss landscape: its centre, its orientation (z[i][j] = loss at x[j], y[i]), weight
// restoration, and the probe made through the registry on engine-provided batches.
#include <gtest/gtest.h>

#include "core/error.h"
#include "probe/landscape.h"
#include "probe_fixture.h"
#include "train/loss.h"

namespace normlab::probe {
namespace {
using namespace testing;

std::vector<data::Batch> first_batches(int64_t n) {
  data::Batcher b(synthetic(48), batch_opts(false), 0);
  b.start_epoch(0);
  std::vector<data::Batch> out;
  data::Batch batch;
  while (static_cast<int64_t>(out.size()) < n && b.next(batch)) out.push_back(batch);
  return out;
}

double mean_loss(models::ClassifierImpl& model, const std::vector<data::Batch>& batches) {
  train::EvalModeGuard eval(model);
  torch::NoGradGuard ng;
  double sum = 0;
  int64_t n = 0;
  for (const auto& b : batches) {
    sum += train::cross_entropy(model.forward(b.x), b.y).item<double>() * b.y.size(0);
    n += b.y.size(0);
  }
  return sum / n;
}

TEST(Landscape, CentreOrientationAndRestoredWeights) {
  apply_seed(0);
  auto model = tiny_model();
  std::vector<torch::Tensor> params;
  for (const auto& p : model->head->parameters()) params.push_back(p);
  std::vector<torch::Tensor> before;
  for (const auto& p : params) before.push_back(p.detach().clone());
  auto batches = first_batches(2);
  model->train();

  LandscapeOptions o;
  o.resolution = 5;
  o.span = 0.5;
  o.seed = 7;
  store::Surface s = loss_landscape(*model, params, batches, 0, o);
  ASSERT_EQ(s.y.size(), 5u);
  ASSERT_EQ(s.z.size(), 5u);
  ASSERT_EQ(s.z[0].size(), 5u);
  EXPECT_EQ(s.x_label, "alpha");
  EXPECT_EQ(s.y_label, "beta");
  EXPECT_DOUBLE_EQ(s.x.front(), -0.5);
  EXPECT_DOUBLE_EQ(s.x[2], 0.0);
  EXPECT_TRUE(model->is_training());  // its mode is restored
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i], before[i]));

  // Centre = loss of the unperturbed model, in eval mode.
  EXPECT_NEAR(s.z[2][2], mean_loss(*model, batches), 1e-5);
  // Orientation: z[i][j] is the loss at alpha = x[j] (direction 1), beta = y[i] (direction 2).
  auto [d1, d2] = landscape_directions(params, 7);
  {
    torch::NoGradGuard ng;
    for (size_t k = 0; k < params.size(); ++k)
      params[k].copy_(before[k] + s.x[0] * d1[k] + s.y[4] * d2[k]);
  }
  const double at = mean_loss(*model, batches);
  {
    torch::NoGradGuard ng;
    for (size_t k = 0; k < params.size(); ++k) params[k].copy_(before[k]);
  }
  EXPECT_NEAR(s.z[4][0], at, 1e-5);
  EXPECT_GT(std::fabs(s.z[0][4] - at), 1e-4);  // the transpose is a different point
}

// The engine's evaluation batches, here straight from a Batcher (prefix stage 0).
class FakeEval : public train::EvalBatches {
 public:
  bool has_split(const std::string& split) const override { return split == "train"; }
  int64_t input_stage() const override { return 0; }
  void for_each(const std::string& split, int64_t max_batches, int64_t stage,
                const std::function<void(const data::Batch&)>& fn) override {
    ++calls;
    last_split = split;
    for (const auto& b : first_batches(max_batches)) fn(b);
  }
  int calls = 0;
  std::string last_split;
};

TEST(Landscape, ProbeRecordsASurfaceAtRunEndFromEngineBatches) {
  ProbeRun run("landscape", {{"params", "head"}, {"resolution", 3}, {"batches", 1}});
  run.epoch();
  FakeEval eval;
  run.trainer->notify_run_end(0, &eval);
  auto rec = run.trainer->recorder().flush();
  ASSERT_EQ(rec.surfaces.size(), 1u);
  EXPECT_EQ(rec.surfaces[0].name, "landscape");
  EXPECT_EQ(rec.surfaces[0].surface.z.size(), 3u);
  EXPECT_EQ(eval.calls, 1);
  EXPECT_EQ(eval.last_split, "train");  // no validation split: the training images
}

TEST(Landscape, SelectionMatchingNothingIsRefusedBeforeTraining) {
  EXPECT_THROW(ProbeRun("landscape", {{"params", "haed"}}), Error);
}

}  // namespace
}  // namespace normlab::probe
