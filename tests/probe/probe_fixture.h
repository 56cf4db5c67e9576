// Shared pieces of the probe tests: synthetic data, a tiny CNN, a trainer with one probe made
// through the registry (as the study engine makes it), and an observer that captures what the
// probe should have seen, so each test recomputes the probe's numbers independently.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/runtime.h"
#include "data/registry.h"
#include "probe/registry.h"
#include "train/trainer.h"
#include "train_loop.h"

namespace normlab::probe::testing {

inline data::Dataset synthetic(int64_t n) {
  data::DatasetSource s;
  s.name = "synthetic";
  s.synthetic_size = n;
  s.synthetic_classes = 3;
  s.synthetic_hw = 10;
  return data::load_dataset(s);
}

inline data::BatcherOptions batch_opts(bool shuffle) {
  data::BatcherOptions b;
  b.batch_size = 16;
  b.shuffle = shuffle;
  b.mean = {0.5};
  b.stddev = {0.5};
  return b;
}

// `dropout` < 0 keeps the head's default.
inline models::Classifier tiny_model(double dropout = -1) {
  models::ModelOptions m;
  m.in_channels = 1;
  m.input_hw = 10;
  m.num_classes = 3;
  m.width = 4;
  m.depth = 2;
  m.head.hidden = 8;
  if (dropout >= 0) m.head.dropout = dropout;
  return models::build_model(m);
}

// Clones of every trainable gradient and weight at each hook, per step.
class Capture : public train::Observer {
 public:
  void after_backward(const train::StepContext& ctx) override {
    raw.push_back(grads(ctx));
    pre_norm.push_back(torch::Tensor());
  }
  void after_clip(const train::StepContext& ctx) override {
    clipped.push_back(grads(ctx));
    pre_norm.back() = ctx.pre_clip_norm.clone();
    before.push_back(weights(ctx));
  }
  void after_step(const train::StepContext& ctx) override { after.push_back(weights(ctx)); }

  std::vector<std::vector<torch::Tensor>> raw, clipped, before, after;
  std::vector<torch::Tensor> pre_norm;
  std::vector<std::string> names;

 private:
  std::vector<torch::Tensor> grads(const train::StepContext& ctx) {
    names = ctx.trainable->names;
    std::vector<torch::Tensor> out;
    for (const auto& p : ctx.trainable->params) out.push_back(p.grad().detach().clone());
    return out;
  }
  static std::vector<torch::Tensor> weights(const train::StepContext& ctx) {
    std::vector<torch::Tensor> out;
    for (const auto& p : ctx.trainable->params) out.push_back(p.detach().clone());
    return out;
  }
};

// A trainer of tiny_model() with `probe` made from its defaults merged with `options`, and a
// Capture observer after it.
struct ProbeRun {
  ProbeRun(const std::string& probe, const nlohmann::json& options, train::ClipOptions clip = {},
           std::vector<std::string> trainable = {"features.1", "head"},
           const std::string& dir = "") {
    apply_seed(0);
    train::TrainOptions o;
    o.epochs = 1;
    o.progress = false;
    o.trainable = std::move(trainable);
    o.clip = clip;
    trainer = std::make_unique<train::Trainer>(tiny_model(), o, torch::kCPU);
    const ProbeInfo& info = find_probe(probe);
    nlohmann::json merged = info.defaults;
    if (!options.is_null()) merged.update(options);
    merged["enabled"] = true;
    info.check(merged, "test");
    observer = info.make(merged, ProbeSetup{trainer->model().ptr().get(), &trainer->trainable(),
                                            clip, 0, "test", dir});
    trainer->add_observer(observer.get());
    trainer->add_observer(&capture);
  }
  // Trains one epoch of 64 synthetic images (4 steps) and returns the epoch's records.
  store::EpochRecords epoch(int64_t e = 0) {
    data::Batcher b(synthetic(64), batch_opts(true), 0);
    normlab::testing::train_epoch(*trainer, b, e);
    return trainer->recorder().flush();
  }
  int64_t index(const std::string& name) const {
    for (size_t i = 0; i < capture.names.size(); ++i) {
      if (capture.names[i] == name) return static_cast<int64_t>(i);
    }
    ADD_FAILURE() << "no trainable parameter " << name;
    return 0;
  }

  std::unique_ptr<train::Trainer> trainer;
  std::unique_ptr<train::Observer> observer;
  Capture capture;
};

inline const store::ScalarPoint* find_point(const std::vector<store::ScalarPoint>& rows,
                                            const std::string& name, int64_t step) {
  for (const auto& r : rows) {
    if (r.name == name && r.step == step) return &r;
  }
  return nullptr;
}

}  // namespace normlab::probe::testing
