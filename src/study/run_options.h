// Typed slices of a resolved run config, one per layer (STYLE.md rule 7: config slices are
// passed down, never a global dict).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/batcher.h"
#include "data/registry.h"
#include "models/model.h"
#include "probe/landscape.h"
#include "study/config.h"
#include "train/early_stopping.h"
#include "train/schedule.h"
#include "train/trainer.h"

namespace normlab::study {

struct DataSlice {
  data::DatasetSource train_source;  // official training split
  data::DatasetSource test_source;   // official test split
  std::vector<int64_t> classes;
  double val_fraction = 0.2;
  uint64_t split_seed = 0;
  int64_t train_limit = 0;
  int64_t val_limit = 0;
  bool test = true;
  int64_t test_limit = 0;
  std::string normalize;  // preset name, resolved from "auto"
  int64_t resize = 0;
  data::AugmentOptions augment;
  int64_t batch_size = 64;
  int64_t eval_batch_size = 256;
  // Where validation comes from: "train" (val_fraction of the training split) or "test"
  // (val_fraction of the official test split; the rest stays the test set).
  std::string val_from = "train";
  // Frozen-prefix feature cache: "auto" (when augmentation is flips at most and the prefix
  // runs in eval mode), "off", or "require" (an Error says why it cannot be used).
  std::string feature_cache = "auto";
};

struct ProbeSlice {
  bool grad_norms = true;
  bool landscape = false;
  std::string landscape_params = "trainable";  // "trainable" or a module-path pattern
  probe::LandscapeOptions landscape_options;
};

struct RunOptions {
  uint64_t seed = 0;
  std::string device = "cpu";
  DataSlice data;
  models::ModelOptions model;  // in_channels / input_hw / num_classes filled from the data
  std::string weights;
  std::vector<std::string> weights_skip;
  bool recalibrate_bn = false;       // rewrite BN statistics from the training data after loading
  int64_t recalibrate_batches = 20;  // evaluation batches measured for that
  bool channels_last = true;         // conv weights and image batches in NHWC (oneDNN's fast path)
  train::TrainOptions train;
  train::ScheduleOptions schedule;
  train::EarlyStoppingOptions early_stopping;
  bool tta = false;                // evaluation logits = mean of original and flipped
  std::string precision = "fp32";  // "bf16": autocast on CUDA
  ProbeSlice probe;
};

// Metrics that schedules and early stopping may monitor (recorded every epoch).
std::vector<std::string> monitor_names();

// Converts a resolved config; throws Error naming the key for invalid values (unknown norm,
// optimizer, dataset, negative sizes, ...).
RunOptions run_options(const Json& config, const std::string& where);

// run_options() for its checks only.
inline void validate_run_config(const Json& config, const std::string& where) {
  (void)run_options(config, where);
}

}  // namespace normlab::study
