// The trainer's hooks: every probe is an Observer. Step hooks run at fixed points of the one
// training step (Trainer::train_step); epoch hooks run from the study engine after each
// epoch's evaluation. Observers record through the Recorder (no host sync per step).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/batcher.h"
#include "train/clip.h"
#include "train/recorder.h"

namespace normlab::models {
class ClassifierImpl;
}

namespace normlab::train {

struct NamedParams {
  std::vector<std::string> names;  // trainable parameter names, in optimizer order
  std::vector<torch::Tensor> params;
};

struct StepContext {
  int64_t epoch = 0;
  int64_t step = 0;  // within the epoch
  int64_t steps_per_epoch = 0;
  int64_t global_step = 0;  // across epochs
  models::ClassifierImpl* model = nullptr;
  const NamedParams* trainable = nullptr;
  torch::Tensor loss;           // () on device
  torch::Tensor pre_clip_norm;  // () global L2 norm before clipping; defined from after_clip on
  ClipOptions clip;
  Recorder* recorder = nullptr;
  // The step's batch as the model received it (entering at input_stage) and its labels, and
  // the optimizer (each parameter group's current learning rate): for probes that evaluate
  // the model themselves (probe/smoothness.cpp).
  torch::Tensor input;
  torch::Tensor y;
  int64_t input_stage = 0;
  torch::optim::Optimizer* optimizer = nullptr;
};

struct EvalResult {
  std::string split;  // "val", "test" or "train_eval"
  double loss = 0;
  double accuracy = 0;
  double macro_sensitivity = 0;
  double macro_specificity = 0;
  double macro_f1 = 0;
  torch::Tensor confusion;  // (K, K) int64 on CPU
};

// Fixed, unaugmented evaluation batches of the run's splits, as the study engine provides
// them: from the images, or already through the group's frozen prefix (shared or cached),
// so an epoch-end probe can evaluate without running the frozen trunk again.
class EvalBatches {
 public:
  virtual ~EvalBatches() = default;
  virtual bool has_split(const std::string& split) const = 0;
  // The stage the cheapest batches enter the model at (the group's frozen prefix cut).
  virtual int64_t input_stage() const = 0;
  // Calls fn for the first max_batches batches (0 = all) of `split`, in order, until fn
  // returns false; x enters the model at `stage` (<= input_stage(): lower stages are computed
  // from the images).
  virtual void for_each(const std::string& split, int64_t max_batches, int64_t stage,
                        const std::function<bool(const data::Batch&)>& fn) = 0;
};

struct EpochContext {
  int64_t epoch = 0;
  models::ClassifierImpl* model = nullptr;
  const NamedParams* trainable = nullptr;
  Recorder* recorder = nullptr;
  EvalBatches* eval = nullptr;  // null where no engine provides data (unit tests)
};

class Observer {
 public:
  virtual ~Observer() = default;
  // After loss.backward(), before clipping: gradients are the raw ones.
  virtual void after_backward(const StepContext& ctx) {}
  // After clipping, before optimizer.step(): gradients are the ones the step will use.
  virtual void after_clip(const StepContext& ctx) {}
  // After optimizer.step().
  virtual void after_step(const StepContext& ctx) {}
  // Once, before a run's first epoch (not when it resumes): the initial weights.
  virtual void on_run_start(const EpochContext& ctx) {}
  // After each epoch's last training step, before its evaluation: training-time procedures
  // that act on the model between epochs (DMBN's momentum adoption) run here.
  virtual void after_train_epoch(const EpochContext& ctx) {}
  // After each evaluation (validation every epoch, test at the end).
  virtual void on_evaluation(const EpochContext& ctx, const EvalResult& result) {}
  // At the end of each epoch, after validation, before the epoch's records are written.
  virtual void on_epoch_end(const EpochContext& ctx) {}
  // Once, when the run has finished training (after its last epoch's on_epoch_end, with the
  // final weights: restored best weights when early stopping restores them).
  virtual void on_run_end(const EpochContext& ctx) {}
};

}  // namespace normlab::train
