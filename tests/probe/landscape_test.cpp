// The loss landscape: its centre, its orientation (z[i][j] = loss at x[j], y[i]), weight
// restoration, and the probe made through the registry on engine-provided batches.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "io/state_dict.h"
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

double eval_loss(models::ClassifierImpl& model, const std::vector<data::Batch>& batches) {
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
  EXPECT_NEAR(s.z[2][2], eval_loss(*model, batches), 1e-5);
  // Orientation: z[i][j] is the loss at alpha = x[j] (direction 1), beta = y[i] (direction 2).
  auto [d1, d2] = landscape_directions(params, 7);
  {
    torch::NoGradGuard ng;
    for (size_t k = 0; k < params.size(); ++k)
      params[k].copy_(before[k] + s.x[0] * d1[k] + s.y[4] * d2[k]);
  }
  const double at = eval_loss(*model, batches);
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
                const std::function<bool(const data::Batch&)>& fn) override {
    ++calls;
    last_split = split;
    for (const auto& b : first_batches(max_batches > 0 ? max_batches : 1000)) {
      if (!fn(b)) break;
    }
  }
  int calls = 0;
  std::string last_split;
};

// A long landscape says how far it is (S0's over the trainable trunk took minutes in silence);
// without a label (tests, -q) it prints nothing.
TEST(Landscape, PrintsItsProgressByGridPoint) {
  auto model = tiny_model();
  std::vector<torch::Tensor> params;
  for (const auto& p : model->head->parameters()) params.push_back(p);
  auto batches = first_batches(1);
  LandscapeOptions o;
  o.resolution = 3;
  setenv("NORMLAB_PROGRESS_SECONDS", "0", 1);  // a line per point, however fast
  ::testing::internal::CaptureStderr();
  loss_landscape(*model, params, batches, 0, o);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  o.progress_label = "run-a landscape";
  ::testing::internal::CaptureStderr();
  loss_landscape(*model, params, batches, 0, o);
  const std::string out = ::testing::internal::GetCapturedStderr();
  unsetenv("NORMLAB_PROGRESS_SECONDS");
  EXPECT_NE(out.find("run-a landscape: point 1/9"), std::string::npos) << out;
  EXPECT_NE(out.find("run-a landscape: point 9/9"), std::string::npos) << out;
  EXPECT_NE(out.find("took"), std::string::npos) << out;
}

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

// Li et al.'s treatment of 1-d tensors: zero with --xignore biasbn, else the tensor itself.
TEST(Landscape, OneDimensionalTensorsFollowTheIgnoreOption) {
  apply_seed(0);
  auto model = tiny_model();
  std::vector<torch::Tensor> params;
  for (const auto& p : model->head->parameters()) params.push_back(p);
  auto [i1, i2] = landscape_directions(params, 3, true);
  auto [k1, k2] = landscape_directions(params, 3, false);
  bool saw_1d = false;
  for (size_t k = 0; k < params.size(); ++k) {
    if (params[k].dim() <= 1) {
      saw_1d = true;
      EXPECT_EQ(i1[k].abs().max().item<float>(), 0.0f);
      EXPECT_TRUE(torch::equal(k1[k], params[k]));
      EXPECT_TRUE(torch::equal(k2[k], params[k]));
    } else {
      // The same draw either way: a filter's direction does not depend on the option.
      EXPECT_TRUE(torch::equal(i1[k], k1[k]));
      // Filter-normalised: each row has the norm of the weight's row.
      EXPECT_TRUE(torch::allclose(i1[k].flatten(1).norm(2, {1}), params[k].flatten(1).norm(2, {1}),
                                  1e-4, 1e-6));
    }
  }
  EXPECT_TRUE(saw_1d);
}

TEST(Landscape, StatesAddTheSelectedModulesRunningStatistics) {
  auto model = tiny_model();  // head.1 is a BatchNorm1d
  train::NamedParams none;
  auto weights = landscape_tensors(*model, none, "head", false, "test");
  auto states = landscape_tensors(*model, none, "head", true, "test");
  std::vector<std::string> extra;
  for (size_t k = weights.size(); k < states.size(); ++k) extra.push_back(states[k].name);
  EXPECT_EQ(extra, (std::vector<std::string>{"head.1.running_mean", "head.1.running_var"}));
  for (const auto& t : states) EXPECT_EQ(t.name.rfind("head.", 0), 0u) << t.name;
}

TEST(Landscape, ImagesCapTheBatchesAndStopTheSource) {
  ProbeRun run("landscape", {{"params", "head"}});
  FakeEval eval;
  train::EpochContext ctx = run.trainer->epoch_context(0, &eval);
  auto named = landscape_tensors(*ctx.model, *ctx.trainable, "head", false, "test");
  int64_t seen = 0;
  class Counting : public FakeEval {
   public:
    void for_each(const std::string& split, int64_t max_batches, int64_t stage,
                  const std::function<bool(const data::Batch&)>& fn) override {
      FakeEval::for_each(split, max_batches, stage, [&](const data::Batch& b) {
        ++produced;
        return fn(b);
      });
    }
    int produced = 0;
  } counting;
  ctx.eval = &counting;
  auto data = landscape_batches(ctx, named, "val", 0, 20, "test");  // batches of 16
  for (const auto& b : data.batches) seen += b.y.size(0);
  EXPECT_EQ(seen, 20);
  ASSERT_EQ(data.batches.size(), 2u);
  EXPECT_EQ(data.batches[1].x.size(0), 4);
  EXPECT_EQ(counting.produced, 2);  // the source stopped once it had enough
}

// A head-only landscape on batches from the images: the frozen trunk runs once per batch, in
// landscape_batches, and the surface is the one drawn from the images at every grid point.
TEST(Landscape, StagesBelowTheMovedTensorsRunOnce) {
  ProbeRun run("landscape", {{"params", "head"}});
  FakeEval eval;
  train::EpochContext ctx = run.trainer->epoch_context(0, &eval);
  auto& model = *ctx.model;
  auto named = landscape_tensors(model, *ctx.trainable, "head", false, "test");
  model.train();
  auto data = landscape_batches(ctx, named, "val", 2, 0, "test");
  EXPECT_EQ(data.stage, model.num_stages());
  auto images = first_batches(2);
  ASSERT_EQ(data.batches.size(), images.size());
  {
    train::EvalModeGuard eval_mode(model);
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < images.size(); ++i) {
      EXPECT_TRUE(torch::equal(data.batches[i].x, model.forward_prefix(images[i].x, data.stage)));
      EXPECT_TRUE(torch::equal(data.batches[i].y, images[i].y));
    }
  }
  EXPECT_TRUE(model.is_training());  // the mode is restored

  std::vector<torch::Tensor> tensors;
  for (const auto& t : named) tensors.push_back(t.tensor);
  LandscapeOptions o;
  o.resolution = 3;
  o.seed = 5;
  auto from_features = loss_landscape(model, tensors, data.batches, data.stage, o);
  auto from_images = loss_landscape(model, tensors, images, 0, o);
  for (size_t i = 0; i < 3; ++i) {
    for (size_t j = 0; j < 3; ++j) EXPECT_DOUBLE_EQ(from_features.z[i][j], from_images.z[i][j]);
  }
}

TEST(Landscape, DrawsAtChosenEpochsAndSavesItsDirections) {
  const auto dir = std::filesystem::temp_directory_path() / "normlab_landscape_dirs";
  std::filesystem::remove_all(dir);
  ProbeRun run("landscape",
               {{"params", "head"},
                {"resolution", 3},
                {"batches", 1},
                {"epochs", {0, 1}},
                {"save_directions", true}},
               {}, {"features.1", "head"}, dir.string());
  FakeEval eval;
  run.trainer->notify_run_start(&eval);
  data::Batcher b(synthetic(64), batch_opts(true), 0);
  normlab::testing::train_epoch(*run.trainer, b, 0, &eval);
  run.trainer->notify_run_end(0, &eval);
  auto rec = run.trainer->recorder().flush();
  std::vector<std::string> names;
  for (const auto& s : rec.surfaces) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"landscape/init", "landscape/epoch", "landscape"}));
  EXPECT_NE(rec.surfaces[0].surface.z[1][1], rec.surfaces[2].surface.z[1][1]);  // trained since
  EXPECT_NE(find_point(rec.epoch_scalars, "time/landscape_s", 0), nullptr);

  // The saved directions reproduce a grid point of the final landscape.
  io::StateDict saved = io::load_state_dict((dir / "landscape-directions.safetensors").string());
  EXPECT_EQ(saved.metadata.at("normlab.images"), "16");
  auto& model = run.trainer->model();
  std::vector<torch::Tensor> params;
  std::vector<std::string> names_moved;
  for (const auto& p : model->named_parameters()) {
    if (p.key().rfind("head.", 0) == 0) {
      params.push_back(p.value());
      names_moved.push_back(p.key());
    }
  }
  const store::Surface& s = rec.surfaces[2].surface;
  {
    torch::NoGradGuard ng;
    for (size_t k = 0; k < params.size(); ++k) {
      const auto& n = names_moved[k];
      ASSERT_NE(saved.find("d1/" + n), nullptr) << n;
      EXPECT_TRUE(torch::equal(*saved.find("origin/" + n), params[k]));
      params[k].copy_(*saved.find("origin/" + n) + s.x[2] * *saved.find("d1/" + n) +
                      s.y[0] * *saved.find("d2/" + n));
    }
  }
  EXPECT_NEAR(s.z[0][2], eval_loss(*model, first_batches(1)), 1e-5);
  std::filesystem::remove_all(dir);
}

// The 1-D interpolation: t = 0 is the initial state (running statistics included), t = 1 the
// final one; "final_stats" keeps the final running statistics along the line.
TEST(Interpolation, EndsAreTheInitialAndFinalWeightsAndItSurvivesAResume) {
  const auto dir = std::filesystem::temp_directory_path() / "normlab_interpolation";
  std::filesystem::remove_all(dir);
  // "all": the frozen trunk's BN statistics moved in training too (frozen_bn "update").
  const nlohmann::json options = {
      {"params", "all"}, {"points", 5}, {"range", {0.0, 1.0}}, {"batches", 1}};
  ProbeRun run("interpolation", options, {}, {"head"}, dir.string());
  FakeEval eval;
  run.trainer->notify_run_start(&eval);
  auto& model = run.trainer->model();
  const auto batches = first_batches(1);
  const double initial = eval_loss(*model, batches);
  data::Batcher b(synthetic(64), batch_opts(true), 0);
  normlab::testing::train_epoch(*run.trainer, b, 0);
  const double final_loss = eval_loss(*model, batches);

  // A fresh probe on the same directory, as after a kill -9 and a resume: no on_run_start.
  const ProbeInfo& info = find_probe("interpolation");
  nlohmann::json merged = info.defaults;
  merged.update(options);
  auto resumed = info.make(
      merged,
      ProbeSetup{model.ptr().get(), &run.trainer->trainable(), {}, 0, "test", dir.string()});
  train::EpochContext ctx = run.trainer->epoch_context(0, &eval);
  resumed->on_run_end(ctx);
  auto rec = run.trainer->recorder().flush();
  ASSERT_EQ(rec.surfaces.size(), 2u);
  const store::Surface& both = rec.surfaces[0].surface;
  EXPECT_EQ(rec.surfaces[0].name, "interpolation");
  ASSERT_EQ(both.y.size(), 1u);
  ASSERT_EQ(both.z[0].size(), 5u);
  EXPECT_NEAR(both.z[0][0], initial, 1e-5);
  EXPECT_NEAR(both.z[0][4], final_loss, 1e-5);
  EXPECT_NE(initial, final_loss);
  EXPECT_NEAR(eval_loss(*model, batches), final_loss, 1e-6);  // weights restored
  const store::Surface& final_stats = rec.surfaces[1].surface;
  EXPECT_EQ(rec.surfaces[1].name, "interpolation/final_stats");
  EXPECT_NEAR(final_stats.z[0][4], final_loss, 1e-5);
  // The head's BN statistics moved in training: at t = 0 the final ones give another loss.
  EXPECT_GT(std::fabs(final_stats.z[0][0] - initial), 1e-6);

  std::filesystem::remove(dir / "interpolation-init.safetensors");
  try {
    resumed->on_run_end(ctx);
    ADD_FAILURE() << "a missing initial state was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("interpolation-init.safetensors"), std::string::npos)
        << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace normlab::probe
