// What a lockstep group's tails consume: the frozen prefix's outputs of each batch and the
// batch's targets, from one of three sources:
//   images         the prefix is empty (cut 0): augmented image batches as they are;
//   shared prefix  the group's prefix holder runs once per batch for every run (no grad);
//   feature cache  the prefix's outputs were computed once per image and flip view
//                  (study/feature_cache.h), read back per batch.
// FeatureSources decides which applies (the cache only when the prefix input and output are
// the same every epoch) and also serves fixed evaluation batches to epoch-end probes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/batcher.h"
#include "data/splits.h"
#include "models/model.h"
#include "study/run_options.h"
#include "train/observer.h"
#include "train/trainer.h"

namespace normlab::study {

struct EngineTiming;

class FeatureSource {
 public:
  virtual ~FeatureSource() = default;
  virtual int64_t batches_per_epoch() const = 0;
  virtual void start_epoch(int64_t epoch) = 0;
  // h: the prefix output (the input of stage `cut`); h_flip: of the mirrored images (only
  // when asked for). Returns false at the end of the epoch.
  virtual bool next(torch::Tensor& h, torch::Tensor* h_flip, train::Targets& t) = 0;
  // Sources that run the prefix per batch run `prefix` from now on (stages [0, cut) of it);
  // the feature cache's sources have nothing to run.
  virtual void set_prefix(models::Classifier /*prefix*/) {}
};

// Batcher options of a run's data slice: training (augmented, shuffled) or evaluation, for a
// dataset of `items` images (a full-batch run's one training batch).
data::BatcherOptions batcher_options(const DataSlice& d, int64_t channels, torch::Device device,
                                     bool training, int64_t items);

// Why the feature cache cannot serve a group led by `lead` whose frozen prefix is stages
// [0, cut) of `prefix` ("" when it can).
std::string feature_cache_refusal(const RunOptions& lead, models::ClassifierImpl& prefix,
                                  int64_t cut);

class FeatureSources : public train::EvalBatches {
 public:
  // `lead` is the group's first run (the group key makes data and prefix settings equal);
  // `architecture` the model config without head and weights (JSON text, the cache key).
  FeatureSources(const RunOptions& lead, std::string architecture, models::Classifier prefix,
                 int64_t cut, torch::Device device, const data::Splits& splits,
                 EngineTiming& timing, bool progress);

  // Why the feature cache cannot serve this group ("" when it can).
  std::string cache_refusal() const;
  bool cached() const { return cached_; }

  FeatureSource& train() { return *train_; }
  // The evaluation source of "val", "test" or "train_eval" (unaugmented training images);
  // null when the split is empty. Call it once per evaluation pass: a source that runs a
  // prefix whose BatchNorm statistics change during training (frozen_bn = "update") gets a
  // copy with the current statistics folded into the convolutions for the pass.
  FeatureSource* eval(const std::string& split);

  // train::EvalBatches: "train" is the unaugmented training set.
  bool has_split(const std::string& split) const override;
  int64_t input_stage() const override { return cut_; }
  void for_each(const std::string& split, int64_t max_batches, int64_t stage,
                const std::function<bool(const data::Batch&)>& fn) override;

 private:
  const data::Dataset* dataset(const std::string& split) const;
  std::unique_ptr<FeatureSource> make(const data::Dataset& ds, bool training,
                                      const std::string& split);

  const RunOptions& lead_;
  std::string architecture_;
  models::Classifier prefix_;
  // What runs the prefix for features: prefix_, or in a frozen_bn = "freeze" group (the prefix
  // never changes) its copy with BatchNorm folded into the convolutions (models/
  // fold_batchnorm.h).
  models::Classifier runner_;
  int64_t cut_;
  torch::Device device_;
  const data::Splits& splits_;
  EngineTiming& timing_;
  int64_t channels_;
  bool cached_ = false;
  bool progress_;  // progress lines while a cache file is built
  std::unique_ptr<FeatureSource> train_, val_, test_, train_eval_;
};

}  // namespace normlab::study
