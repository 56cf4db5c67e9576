#include <gtest/gtest.h>

#include "core/runtime.h"
#include "data/registry.h"
#include "probe/grad_norms.h"
#include "probe/landscape.h"
#include "train/loss.h"
#include "train/trainer.h"

namespace normlab::probe {
namespace {

data::Dataset synthetic(int64_t n) {
  data::DatasetSource s;
  s.name = "synthetic";
  s.synthetic_size = n;
  s.synthetic_classes = 3;
  s.synthetic_hw = 10;
  return data::load_dataset(s);
}

data::BatcherOptions batch_opts(bool shuffle) {
  data::BatcherOptions b;
  b.batch_size = 16;
  b.shuffle = shuffle;
  b.mean = {0.5};
  b.stddev = {0.5};
  return b;
}

models::Classifier tiny_model() {
  models::ModelOptions m;
  m.in_channels = 1;
  m.input_hw = 10;
  m.num_classes = 3;
  m.width = 4;
  m.depth = 2;
  m.head.hidden = 8;
  return models::build_model(m);
}

// Records the gradients the probe saw, to compare with what it recorded.
class GradCapture : public train::Observer {
 public:
  void after_backward(const train::StepContext& ctx) override {
    std::vector<torch::Tensor> norms;
    for (const auto& p : ctx.trainable->params) norms.push_back(p.grad().norm());
    seen.push_back(torch::stack(norms));
  }
  std::vector<torch::Tensor> seen;
};

TEST(GradNormProbe, RecordsPreClipNormPerParameterEveryStep) {
  apply_seed(0);
  train::TrainOptions o;
  o.epochs = 1;
  o.progress = false;
  o.trainable = {"features.1", "head"};
  o.clip.max_norm = 1e-3;  // heavy clipping: the probe must still see raw gradients
  train::Trainer t(tiny_model(), o, torch::kCPU);
  GradNormProbe probe;
  GradCapture capture;
  t.add_observer(&probe);
  t.add_observer(&capture);
  data::Batcher b(synthetic(64), batch_opts(true), 0);
  t.train_epoch(b, 0);
  auto rows = t.recorder().flush().step;

  const auto& names = t.trainable().names;
  ASSERT_EQ(capture.seen.size(), 4u);
  for (int64_t step = 0; step < 4; ++step) {
    for (size_t i = 0; i < names.size(); ++i) {
      std::string name = "grad_norm/" + names[i];
      bool found = false;
      for (const auto& r : rows) {
        if (r.name == name && r.step == step) {
          EXPECT_NEAR(r.value, capture.seen[step][i].item<double>(), 1e-5) << name;
          found = true;
        }
      }
      EXPECT_TRUE(found) << name << " step " << step;
    }
  }
  // The total pre-clip norm is the L2 norm of the per-parameter norms.
  for (const auto& r : rows) {
    if (r.name == "grad_norm/total") {
      EXPECT_NEAR(r.value, capture.seen[r.step].norm().item<double>(), 1e-4);
      EXPECT_GT(r.value, 1e-3);  // the recorded norm is before clipping
    }
  }
  // Only trainable parameters are probed.
  for (const auto& r : rows) EXPECT_EQ(r.name.find("grad_norm/features.0"), std::string::npos);
}

TEST(Landscape, CentreIsTheTrainedLossAndWeightsAreRestored) {
  apply_seed(0);
  auto model = tiny_model();
  data::Batcher b(synthetic(48), batch_opts(false), 0);
  std::vector<torch::Tensor> params;
  for (const auto& p : model->head->parameters()) params.push_back(p);
  std::vector<torch::Tensor> before;
  for (const auto& p : params) before.push_back(p.detach().clone());
  model->train();

  LandscapeOptions o;
  o.resolution = 5;
  o.span = 0.5;
  o.max_batches = 2;
  Landscape land = loss_landscape(model, params, b, o);
  ASSERT_EQ(land.loss.size(), 5u);
  ASSERT_EQ(land.loss[0].size(), 5u);
  EXPECT_DOUBLE_EQ(land.alphas.front(), -0.5);
  EXPECT_DOUBLE_EQ(land.alphas[2], 0.0);

  // Centre = loss of the unperturbed model on the first two batches, in eval mode.
  model->eval();
  torch::NoGradGuard ng;
  b.start_epoch(0);
  data::Batch batch;
  double sum = 0;
  int64_t n = 0;
  for (int i = 0; i < 2 && b.next(batch); ++i) {
    sum += train::cross_entropy(model->forward(batch.x), batch.y).item<double>() * batch.y.size(0);
    n += batch.y.size(0);
  }
  EXPECT_NEAR(land.loss[2][2], sum / n, 1e-5);
  // Away from the centre the loss differs (the directions are not zero).
  EXPECT_NE(land.loss[0][0], land.loss[2][2]);
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i], before[i]));
  model->train();
  auto j = land.to_json();
  EXPECT_EQ(j["loss"].size(), 5u);
}

}  // namespace
}  // namespace normlab::probe
