#include "train/trainer.h"

#include "train_loop.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/runtime.h"
#include "data/registry.h"
#include "train/guards.h"

namespace normlab::train {
namespace {

data::Dataset synthetic(int64_t n, bool train) {
  data::DatasetSource s;
  s.name = "synthetic";
  s.train = train;
  s.synthetic_size = n;
  s.synthetic_classes = 4;
  s.synthetic_hw = 12;
  return data::load_dataset(s);
}

data::BatcherOptions batch_opts(bool train) {
  data::BatcherOptions b;
  b.batch_size = 32;
  b.shuffle = train;
  b.mean = {0.5};
  b.stddev = {0.5};
  return b;
}

models::Classifier tiny_model(const std::string& head_norm = "bn") {
  models::ModelOptions m;
  m.backbone = "small_cnn";
  m.in_channels = 1;
  m.input_hw = 12;
  m.num_classes = 4;
  m.width = 8;
  m.depth = 3;
  m.head.hidden = 16;
  m.head.norm = head_norm;
  return models::build_model(m);
}

TrainOptions opts() {
  TrainOptions o;
  o.epochs = 2;
  o.optimizer.lr = 3e-3;
  o.progress = false;
  return o;
}

class CountingObserver : public Observer {
 public:
  void after_backward(const StepContext& ctx) override {
    ++backward;
    // Gradients exist and have not been clipped or applied yet.
    for (const auto& p : ctx.trainable->params) saw_grad = saw_grad || p.grad().defined();
  }
  void after_step(const StepContext&) override { ++steps; }
  void on_evaluation(const EpochContext&, const EvalResult& r) override { last_split = r.split; }
  int backward = 0, steps = 0;
  bool saw_grad = false;
  std::string last_split;
};

TEST(Trainer, LearnsSyntheticDataAndCallsObservers) {
  apply_seed(0);
  Trainer t(tiny_model(), opts(), torch::kCPU);
  CountingObserver obs;
  t.add_observer(&obs);
  data::Batcher train_b(synthetic(256, true), batch_opts(true), 0);
  data::Batcher val_b(synthetic(128, false), batch_opts(false), 0);
  EvalResult before = testing::evaluate(t, val_b, "val");
  testing::train_epoch(t, train_b, 0);
  EpochStats s = testing::train_epoch(t, train_b, 1);
  EvalResult after = testing::evaluate(t, val_b, "val");
  EXPECT_EQ(obs.backward, 16);
  EXPECT_EQ(obs.steps, 16);
  EXPECT_TRUE(obs.saw_grad);
  EXPECT_EQ(obs.last_split, "val");
  EXPECT_GT(after.accuracy, 60.0) << "before " << before.accuracy;
  EXPECT_LT(after.loss, before.loss);
  EXPECT_GT(s.images_per_s, 0);
  EXPECT_EQ(after.confusion.sum().item<int64_t>(), 128);
  auto flushed = t.recorder().flush();
  EXPECT_EQ(flushed.step_scalars.size(), 32u);  // train/loss + grad_norm/total per step
}

// A phase boundary: what trains changes, the optimizer is new (its state fresh, or carried
// over for the parameters that trained before with keep_state).
TEST(Trainer, SetPhaseReplansTheParametersAndTheOptimizerState) {
  data::Batcher train_b(synthetic(64, true), batch_opts(true), 0);  // 2 steps per epoch
  auto adam_step = [](Trainer& t, const std::string& name) -> int64_t {
    torch::Tensor p;
    for (const auto& item : t.model()->named_parameters()) {
      if (item.key() == name) p = item.value();
    }
    for (const auto& group : t.optimizer().param_groups()) {
      for (const auto& q : group.params()) {
        if (!q.is_same(p)) continue;
        auto* state = find_param_state(t.optimizer(), q);
        if (state == nullptr) return 0;
        return static_cast<torch::optim::AdamParamState&>(*state).step();
      }
    }
    return -1;  // not trained
  };
  for (bool keep : {false, true}) {
    SCOPED_TRACE(keep ? "keep_state" : "fresh");
    apply_seed(0);
    TrainOptions head = opts();
    head.trainable = {"head"};
    Trainer t(tiny_model(), head, torch::kCPU);
    const torch::Tensor trunk_before = t.model()->features->parameters()[0].detach().clone();
    testing::train_epoch(t, train_b, 0);
    EXPECT_TRUE(torch::equal(trunk_before, t.model()->features->parameters()[0]));
    EXPECT_EQ(adam_step(t, "head.0.weight"), 2);
    EXPECT_EQ(adam_step(t, "features.0.0.weight"), -1);

    TrainOptions all = opts();  // trainable = [] : everything
    t.set_phase(all, keep);
    EXPECT_EQ(t.trainable().names.size(), t.model()->parameters().size());
    EXPECT_EQ(adam_step(t, "head.0.weight"), keep ? 2 : 0);
    EXPECT_EQ(adam_step(t, "features.0.0.weight"), 0);
    testing::train_epoch(t, train_b, 1);
    EXPECT_FALSE(torch::equal(trunk_before, t.model()->features->parameters()[0]));
    EXPECT_EQ(adam_step(t, "head.0.weight"), keep ? 4 : 2);
    EXPECT_EQ(adam_step(t, "features.0.0.weight"), 2);
    EXPECT_EQ(t.global_step(), 4);

    // Back to the head only: the trunk stops moving and keeps no stale gradient.
    t.set_phase(head, keep);
    const torch::Tensor trunk_after = t.model()->features->parameters()[0].detach().clone();
    EXPECT_FALSE(t.model()->features->parameters()[0].grad().defined());
    testing::train_epoch(t, train_b, 2);
    EXPECT_TRUE(torch::equal(trunk_after, t.model()->features->parameters()[0]));
  }
}

TEST(Trainer, FrozenBatchNormOptionControlsRunningStats) {
  for (auto mode : {FrozenBatchNorm::kUpdate, FrozenBatchNorm::kFreeze}) {
    apply_seed(0);
    auto model = tiny_model();
    TrainOptions o = opts();
    o.trainable = {"head"};
    o.frozen_bn = mode;
    Trainer t(model, o, torch::kCPU);
    auto* bn = model->features->ptr(0)->as<torch::nn::Sequential>()->ptr(1).get();
    torch::Tensor before = bn->named_buffers()["running_mean"].clone();
    data::Batcher b(synthetic(64, true), batch_opts(true), 0);
    testing::train_epoch(t, b, 0);
    torch::Tensor after = bn->named_buffers()["running_mean"];
    if (mode == FrozenBatchNorm::kUpdate) {
      EXPECT_FALSE(torch::equal(before, after)) << "frozen BN should update its statistics";
    } else {
      EXPECT_TRUE(torch::equal(before, after)) << "frozen BN must not update";
    }
    // The frozen backbone's weights never change.
    EXPECT_FALSE(model->features->ptr(0)
                     ->as<torch::nn::Sequential>()
                     ->ptr(0)
                     ->named_parameters()[0]
                     .value()
                     .requires_grad());
  }
}

TEST(Trainer, NonFiniteLossIsAnErrorNamingTheRun) {
  apply_seed(0);
  TrainOptions o = opts();
  o.optimizer.lr = 1e30;  // diverges at once
  o.optimizer.name = "sgd";
  o.label = "diverging-run";
  Trainer t(tiny_model("none"), o, torch::kCPU);
  data::Batcher b(synthetic(128, true), batch_opts(true), 0);
  try {
    testing::train_epoch(t, b, 0);
    testing::train_epoch(t, b, 1);
    FAIL() << "expected an Error for NaN loss";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("diverging-run"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  }
}

// 33 training images in batches of 32 leave a last batch of one: BatchNorm cannot train on it,
// and the error says so (not c10's message and backtrace).
TEST(Trainer, ABatchOfOneThroughBatchNormIsAClearError) {
  apply_seed(0);
  TrainOptions o = opts();
  o.label = "odd-run";
  Trainer t(tiny_model("bn"), o, torch::kCPU);
  data::Batcher b(synthetic(33, true), batch_opts(true), 0);
  try {
    testing::train_epoch(t, b, 0);
    FAIL() << "expected an Error for a batch of one";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("odd-run"), std::string::npos) << m;
    EXPECT_NE(m.find("batch of 1 image"), std::string::npos) << m;
    EXPECT_NE(m.find("train.batch_size"), std::string::npos) << m;
    EXPECT_EQ(m.find("frame #"), std::string::npos) << m;
  }
}

TEST(Trainer, CheckpointResumeIsBitIdentical) {
  namespace fs = std::filesystem;
  std::string path =
      (fs::temp_directory_path() / ("normlab_ckpt_" + std::to_string(getpid()))).string();
  auto train_data = synthetic(128, true);

  // Uninterrupted: 2 epochs.
  apply_seed(5);
  Trainer a(tiny_model(), opts(), torch::kCPU);
  data::Batcher ba(train_data, batch_opts(true), 5);
  testing::train_epoch(a, ba, 0);
  a.save_checkpoint(path, 1);
  testing::train_epoch(a, ba, 1);

  // Fresh model, restored from the epoch-1 checkpoint, then epoch 2.
  apply_seed(99);  // a different global RNG state: the checkpoint must restore it
  Trainer b(tiny_model(), opts(), torch::kCPU);
  EXPECT_EQ(b.load_checkpoint(path), 1);
  data::Batcher bb(train_data, batch_opts(true), 5);
  testing::train_epoch(b, bb, 1);

  auto pa = a.model()->named_parameters();
  auto pb = b.model()->named_parameters();
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  for (const auto& item : a.model()->named_buffers()) {
    EXPECT_TRUE(torch::equal(item.value(), b.model()->named_buffers()[item.key()])) << item.key();
  }
  std::filesystem::remove(path);
}

TEST(Trainer, CorruptCheckpointIsRefused) {
  namespace fs = std::filesystem;
  std::string path =
      (fs::temp_directory_path() / ("normlab_bad_ckpt_" + std::to_string(getpid()))).string();
  { std::ofstream(path) << "not a checkpoint"; }
  Trainer t(tiny_model(), opts(), torch::kCPU);
  try {
    t.load_checkpoint(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.subject(), path);
  }
  fs::remove(path);
}

TEST(Guards, EvalModeAndWeightsAreRestored) {
  auto model = tiny_model();
  model->train();
  auto* bn = model->features->ptr(0)->as<torch::nn::Sequential>()->ptr(1).get();
  bn->eval();  // a frozen BN inside a training model
  auto w = model->head->ptr(0)->as<torch::nn::Linear>()->weight;
  torch::Tensor saved = w.detach().clone();
  {
    EvalModeGuard guard(*model);
    EXPECT_FALSE(model->is_training());
    WeightRestoreGuard restore({w});
    torch::NoGradGuard ng;
    w.add_(1.0);
  }
  EXPECT_TRUE(model->is_training());
  EXPECT_FALSE(bn->is_training());
  EXPECT_TRUE(model->head->is_training());
  EXPECT_TRUE(torch::equal(w, saved));
}

}  // namespace
}  // namespace normlab::train
