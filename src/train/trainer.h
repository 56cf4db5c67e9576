// The one training step: forward, loss, backward, observers, clipping, step; evaluation
// accumulators with classification metrics; checkpoints. The loop over batches lives in one
// place, the study engine's lockstep group (study/lockstep.cpp), which feeds the same batch,
// or the same frozen-trunk features, to several trainers step by step (begin_epoch /
// train_step / end_epoch) and calls the epoch hooks.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/progress.h"
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
  // The run's own random stream (dropout): swapped into the device's default generator
  // around each step, so a run draws the same masks alone or interleaved with other runs.
  uint64_t seed = 0;
  // The model stage the trainer's inputs enter at: 0 = images, otherwise the output of a
  // frozen prefix (models::ClassifierImpl::forward_prefix) computed by the caller.
  int64_t input_stage = 0;
};
// TrainOptions' keys in the train table: epochs, optimizer, trainable, param_groups,
// frozen_bn, ClipOptions' clip_norm and clip_value, label_smoothing. label, progress, seed and
// input_stage belong to the run, not to the table.
void describe(TrainOptions& o, OptionFields& f);

// Targets of one training batch. With mixup/cutmix the loss is
// lam * CE(y) + (1 - lam) * CE(y2), per sample.
struct Targets {
  torch::Tensor y;    // (B) int64
  torch::Tensor y2;   // (B) int64 partner labels; undefined without mixing
  torch::Tensor lam;  // (B) float weight of y; undefined without mixing
};

// Accumulates loss and confusion on the device over evaluation batches.
class EvalAccumulator {
 public:
  EvalAccumulator(int64_t num_classes, torch::Device device);
  // logits (B, K), y (B) int64; plain cross-entropy (label smoothing is a training regulariser)
  void add(const torch::Tensor& logits, const torch::Tensor& y);
  EvalResult result(const std::string& split) const;  // one host transfer

 private:
  int64_t num_classes_;
  torch::Tensor loss_sum_;   // () double
  torch::Tensor confusion_;  // (K, K) int64
  int64_t seen_ = 0;
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
  void clear_observers() { observers_.clear(); }

  // A phase boundary (study/phases.h): trains what `options` says from now on (trainable,
  // param_groups, optimizer, frozen_bn) with a new optimizer; `keep_state` carries the
  // optimizer state of every parameter that trained before (e.g. Adam's moments and step).
  // The model, the step count, the run's random stream and the observers stay.
  void set_phase(const TrainOptions& options, bool keep_state);

  // begin_epoch sets train mode (frozen BN per options), each train_step runs forward from
  // options.input_stage, loss, backward, observers, clipping and the optimizer step;
  // end_epoch reads the device accumulators once and throws Error if the loss became
  // non-finite, naming the run, epoch and first bad step.
  void begin_epoch(int64_t epoch, int64_t steps_per_epoch);
  void train_step(const torch::Tensor& input, const Targets& targets);
  EpochStats end_epoch();

  // Logits for inputs entering at options.input_stage, in whatever mode the model is in.
  torch::Tensor logits(const torch::Tensor& input);

  // Epoch hooks, called by the engine that runs the loop (see Observer).
  void notify_evaluation(const EvalResult& result, int64_t epoch);
  void notify_run_start(EvalBatches* eval);
  void notify_train_epoch_end(int64_t epoch, EvalBatches* eval);
  void notify_epoch_end(int64_t epoch, EvalBatches* eval);
  void notify_run_end(int64_t epoch, EvalBatches* eval);
  // What the epoch hooks see (for code that drives an observer directly).
  EpochContext epoch_context(int64_t epoch, EvalBatches* eval);

  // Checkpoint = model parameters and buffers, optimizer state, the run's RNG state, the
  // number of completed epochs and `extra` (schedule, early stopping: whatever the caller
  // needs to resume), written atomically.
  void save_checkpoint(const std::string& path, int64_t epochs_done,
                       const nlohmann::json& extra = nlohmann::json::object());
  // Returns the number of completed epochs stored in the checkpoint; fills `extra` if given.
  int64_t load_checkpoint(const std::string& path, nlohmann::json* extra = nullptr);
  // The number of completed epochs a checkpoint holds, without loading it into a trainer.
  static int64_t checkpoint_epochs(const std::string& path);

  models::Classifier& model() { return model_; }
  Recorder& recorder() { return recorder_; }
  const ParamPlan& plan() const { return plan_; }
  const NamedParams& trainable() const { return trainable_; }
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  int64_t global_step() const { return global_step_; }

 private:
  void set_train_mode();
  void plan();  // trainable_, optimizer_ and frozen_bns_ from options_

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
  torch::Tensor rng_state_;  // the run's generator state (see TrainOptions::seed)

  struct EpochState {
    int64_t epoch = 0;
    int64_t step = 0;
    int64_t steps = 0;  // in this epoch
    int64_t seen = 0;
    torch::Tensor loss_sum;   // () double on device
    torch::Tensor correct;    // () int64
    torch::Tensor first_bad;  // () int64, kNoBadStep when every loss was finite
    std::unique_ptr<Progress> progress;
    std::chrono::steady_clock::time_point start;
  };
  EpochState epoch_;
};

}  // namespace normlab::train
