// The engine's feature sources (study/feature_source.h): an evaluation pass of a group whose
// frozen prefix trains its BatchNorm statistics (frozen_bn = "update") runs a copy with the
// statistics of that moment folded into the convolutions, and gives the unfolded prefix's
// eval-mode features; a later pass sees the statistics as they are then.
#include "study/feature_source.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "models/prefix.h"
#include "study/engine_timing.h"
#include "study/group_setup.h"
#include "study/run_options.h"
#include "study/spec.h"

namespace normlab::study {
namespace {

const char* kUpdateGroup = R"toml(
[study]
name = "sources"
seeds = [0]

[run]
data = { dataset = "synthetic", synthetic = { size = 48, classes = 3, hw = 32 }, val_fraction = 0.5, feature_cache = "off" }
model = { backbone = "mobilenet_v2", width_mult = 0.25, head = { kind = "linear" } }
train = { batch_size = 8, eval_batch_size = 12, trainable = ["features.18", "head"], frozen_bn = "update" }
)toml";

// The first evaluation batch of `split` from the source, and from the unfolded prefix in eval
// mode (for_each runs prefix_ itself up to cut - 1; the last stage runs here).
std::pair<torch::Tensor, torch::Tensor> first_batch(FeatureSources& sources,
                                                    models::ClassifierImpl& prefix,
                                                    const std::string& split, int64_t cut) {
  FeatureSource* source = sources.eval(split);
  EXPECT_NE(source, nullptr);
  source->start_epoch(0);
  torch::Tensor got;
  train::Targets t;
  EXPECT_TRUE(source->next(got, nullptr, t));
  torch::Tensor want;
  sources.for_each(split, 1, cut - 1, [&](const data::Batch& b) {
    want = b.x;
    return false;
  });
  prefix.eval();
  {
    torch::NoGradGuard no_grad;
    want = prefix.forward_between(want, cut - 1, cut).contiguous();
  }
  prefix.train();
  return {got.contiguous(), want};
}

TEST(FeatureSources, EvaluationFoldsTheStatisticsOfItsMoment) {
  Plan plan = expand(parse_spec(kUpdateGroup, "sources.toml"), ExpandOptions{});
  ASSERT_EQ(plan.runs.size(), 1u);
  const RunOptions o = run_options(plan.runs[0].config, "sources.toml");
  const data::Splits splits = data::load_splits(o.data.split);
  models::Classifier prefix = build_run_model(o, splits);
  if (o.channels_last) models::to_channels_last(*prefix);
  prefix->train();  // frozen_bn = "update": the prefix runs in train mode between evaluations
  const int64_t cut = models::cut_point(*prefix, o.train.trainable);
  ASSERT_GT(cut, 0);
  EngineTiming timing;
  FeatureSources sources(o, "{}", prefix, cut, torch::kCPU, splits, timing, false);
  ASSERT_FALSE(sources.cached());
  // Train-mode passes set the statistics (an untrained prefix with its initial ones shrinks
  // every map towards 0, about 10x per few blocks, which would make any comparison vacuous).
  const int64_t channels = splits.train.images.size(1);
  auto move_statistics = [&](double gain, double shift) {
    torch::NoGradGuard no_grad;
    torch::manual_seed(11);
    for (int i = 0; i < 30; ++i) {
      prefix->forward_prefix(torch::randn({8, channels, 32, 32}) * gain + shift, cut);
    }
  };
  move_statistics(1, 0);

  auto [got, want] = first_batch(sources, *prefix, "val", cut);
  ASSERT_EQ(got.sizes(), want.sizes());
  const double scale = want.abs().max().item<double>();
  ASSERT_GT(scale, 1e-2) << "vacuous features";
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-5 * scale);

  move_statistics(3, 1);  // training goes on: the statistics move
  auto [later, later_want] = first_batch(sources, *prefix, "val", cut);
  EXPECT_GT((later_want - want).abs().max().item<double>(), 1e-2 * scale)
      << "the statistics did not move: the test would not see a stale fold";
  EXPECT_LE((later - later_want).abs().max().item<double>(), 1e-5 * scale);
}

}  // namespace
}  // namespace normlab::study
