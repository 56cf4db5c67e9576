// Typed slices of a resolved run config, one per layer (STYLE.md rule 7: config slices are
// passed down, never a global dict). Each struct describes its own keys (core/option_fields.h):
// describe(RunOptions) is the whole run config but its `probe` table (probe/registry.h), and
// its defaults are the config schema (default_run_config).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "data/batcher.h"
#include "data/registry.h"
#include "data/splits.h"
#include "models/model.h"
#include "nn/dmbn.h"
#include "probe/registry.h"
#include "study/config.h"
#include "study/phases.h"
#include "train/early_stopping.h"
#include "train/schedule.h"
#include "train/trainer.h"

namespace normlab::study {

struct DataSlice {
  data::SplitOptions split;
  // Preset name; "auto" (the dataset's own preset) is resolved by run_options().
  std::string normalize = "auto";
  int64_t resize = 0;
  // "pil" (the PyTorch seeds' torchvision Resize on PIL images) or "float" (data/augment.h).
  std::string resize_filter = "pil";
  data::AugmentOptions augment;
  int64_t batch_size = 64;
  bool full_batch = false;  // train.full_batch: one step per epoch over the whole training set
  int64_t eval_batch_size = 256;
  // The training batch size for a training set of `items` images.
  int64_t train_batch(int64_t items) const {
    return full_batch ? std::max<int64_t>(items, 1) : batch_size;
  }
  // Frozen-prefix feature cache: "auto" (when augmentation is flips at most and the prefix
  // runs in eval mode), "off", or "require" (an Error says why it cannot be used).
  std::string feature_cache = "auto";
};
// The data table: SplitOptions' keys, normalize, resize, augment, feature_cache. The batch
// sizes are keys of the train table (describe(RunOptions)).
void describe(DataSlice& d, OptionFields& f);

struct ProbeSlice {
  // The probes a run turns on (`probe.<name>.enabled`), with their checked options.
  std::vector<std::pair<const probe::ProbeInfo*, Json>> enabled;
};

struct RunOptions {
  uint64_t seed = 0;
  std::string device = "cpu";
  DataSlice data;
  models::ModelOptions model;  // in_channels / input_hw / num_classes filled from the data
  nn::DmbnOptions dmbn;        // model.dmbn: how DMBN layers adopt their momentum
  std::string weights;
  std::vector<std::string> weights_skip;
  bool recalibrate_bn = false;       // rewrite BN statistics from the training data after loading
  int64_t recalibrate_batches = 20;  // evaluation batches measured for that
  bool channels_last = true;         // conv weights and image batches in NHWC (oneDNN's fast path)
  train::TrainOptions train;
  train::ScheduleOptions schedule;
  train::EarlyStoppingOptions early_stopping;
  // Every val_every training steps (0 = never), the loss and accuracy on the first
  // val_sample images of the validation split (the training images when there is none),
  // for every run of a lockstep group in one pass: S2's per-minibatch validation loss.
  int64_t val_every = 0;
  int64_t val_sample = 512;
  bool tta = false;                // evaluation logits = mean of original and flipped
  bool tta_monitor = false;        // schedules/early stopping monitor the TTA validation loss
  std::string precision = "fp32";  // "bf16": autocast on CUDA
  ProbeSlice probe;
  // The run's phases (study/phases.h); one phase over train.epochs without `phases`.
  std::vector<Phase> phases;
};
// seed, device, and the data, model and train tables: each key with its default and checks.
// The checks that involve several keys or the probes are run_options()'.
void describe(RunOptions& o, OptionFields& f);

// Converts a resolved config; throws Error naming the key for invalid values (unknown norm,
// optimizer, dataset, negative sizes, ...).
RunOptions run_options(const Json& config, const std::string& where);

// run_options() for its checks only.
inline void validate_run_config(const Json& config, const std::string& where) {
  (void)run_options(config, where);
}

}  // namespace normlab::study
