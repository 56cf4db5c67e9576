// The one training loop: forward, loss, backward, observers, clipping, step; evaluation with
// classification metrics; checkpoints. Every study and probe goes through it.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/batcher.h"
#include "models/model.h"
#include "train/clip.h"
#include "train/observer.h"
#include "train/optimizer.h"
#include "train/params.h"
#include "train/recorder.h"

namespace normlab::train {

enum class FrozenBatchNorm {
  kUpdate,  // frozen BN layers stay in train mode: batch statistics, running stats update
            // (what PyTorch does after model.train(), and what the seeds' scripts did)
  kFreeze,  // frozen BN layers run in eval mode: running statistics, no update
};

struct TrainOptions {
  int64_t epochs = 3;
  OptimizerOptions optimizer;
  std::vector<std::string> trainable;  // empty = everything trains
  std::vector<GroupRule> param_groups;
  FrozenBatchNorm frozen_bn = FrozenBatchNorm::kUpdate;
  ClipOptions clip;
  double label_smoothing = 0;
  std::string label = "run";  // for progress lines and error messages
  bool progress = true;
};

struct EpochStats {
  double loss = 0;
  double accuracy = 0;  // percent, on augmented training batches
  double seconds = 0;
  double images_per_s = 0;
};

class Trainer {
 public:
  Trainer(models::Classifier model, TrainOptions options, torch::Device device);

  void add_observer(Observer* observer) { observers_.push_back(observer); }

  // One epoch over `batcher` (start_epoch is called here). Throws Error if the loss became
  // non-finite, naming the run, epoch and first bad step.
  EpochStats train_epoch(data::Batcher& batcher, int64_t epoch);

  // Loss and metrics over every batch of `batcher`, in eval mode and inference mode.
  EvalResult evaluate(data::Batcher& batcher, const std::string& split, int64_t epoch);

  // Checkpoint = model parameters and buffers, optimizer state, CPU RNG state and the number
  // of completed epochs, written atomically.
  void save_checkpoint(const std::string& path, int64_t epochs_done);
  // Returns the number of completed epochs stored in the checkpoint.
  int64_t load_checkpoint(const std::string& path);

  models::Classifier& model() { return model_; }
  Recorder& recorder() { return recorder_; }
  const ParamPlan& plan() const { return plan_; }
  const NamedParams& trainable() const { return trainable_; }
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  int64_t global_step() const { return global_step_; }

 private:
  void set_train_mode();

  models::Classifier model_;
  TrainOptions options_;
  torch::Device device_;
  ParamPlan plan_;
  NamedParams trainable_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<std::shared_ptr<torch::nn::Module>> frozen_bns_;
  std::vector<Observer*> observers_;
  Recorder recorder_;
  int64_t global_step_ = 0;
};

}  // namespace normlab::train
