// Turns an in-memory uint8 Dataset into normalised float batches on a device. Augmentation
// is batched tensor code whose random draws come from the batcher's own generator, so the
// same seed gives the same batches regardless of what the model does with the global RNG.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"

namespace normlab::data {

struct BatcherOptions {
  int64_t batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;
  AugmentOptions augment;
  int64_t resize = 0;  // > 0: bilinear resize to resize x resize (fused into the affine warp)
  ResizeFilter resize_filter = ResizeFilter::kFloat;  // of a resize without affine warp
  std::vector<double> mean;  // per channel, in [0,1] pixel units; empty = no normalisation
  std::vector<double> stddev;
  torch::Device device = torch::kCPU;
};

struct Batch {
  torch::Tensor x;    // (B, C, H', W') float32 on options.device
  torch::Tensor y;    // (B) int64 on options.device
  torch::Tensor y2;   // (B) int64 partner labels, undefined when no mixing
  torch::Tensor lam;  // (B) float32 weight of y, undefined when no mixing; the loss is
                      // lam * CE(y) + (1 - lam) * CE(y2)
};

class Batcher {
 public:
  // The dataset is copied to options.device once. Throws Error if mean/stddev do not match
  // the channel count or an augmentation option is out of range.
  Batcher(const Dataset& dataset, BatcherOptions options, uint64_t seed);

  int64_t batches_per_epoch() const;
  int64_t size() const { return dataset_.size(); }

  // Starts epoch `epoch`: the permutation and augmentation draws are a pure function of
  // (seed, epoch), so a resumed run sees the same batches as an uninterrupted one. All draws
  // come from gen_ in a fixed order: the epoch's permutation, then per batch flip, crop,
  // affine, mixing (see augment.h), each only when on.
  void start_epoch(int64_t epoch);
  // Fills `batch` with the next batch; returns false at the end of the epoch.
  bool next(Batch& batch);

  const BatcherOptions& options() const { return options_; }

 private:
  Dataset dataset_;  // on options_.device
  BatcherOptions options_;
  uint64_t seed_;
  torch::Generator gen_;
  torch::Tensor order_;  // (N) int64 on CPU
  int64_t cursor_ = 0;
  torch::Tensor mean_;    // (1, C, 1, 1) float on options_.device, undefined = none
  torch::Tensor stddev_;  // (1, C, 1, 1)
};

// The seed of epoch `epoch`'s generator: a pure function of (seed, epoch) that spreads
// nearby pairs apart.
uint64_t epoch_seed(uint64_t seed, int64_t epoch);

// Normalisation presets; values and their sources live in batcher.cpp.
struct NormalizePreset {
  std::vector<double> mean;
  std::vector<double> stddev;
};
// "cifar", "imagenet", "fashion-mnist", "mnist", "minus-one-one" ([-1,1]), "none".
NormalizePreset normalize_preset(const std::string& name);
// The same for `channels`-channel images: "minus-one-one" is expanded to one value per
// channel; a preset made for another channel count throws Error.
NormalizePreset normalize_preset(const std::string& name, int64_t channels);
std::vector<std::string> normalize_preset_names();

}  // namespace normlab::data
