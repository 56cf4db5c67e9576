// The trainer's observer interface: every probe is an Observer. Hooks run at fixed points
// of a step and an epoch and record through the Recorder (no host sync per step).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "train/recorder.h"

namespace normlab::train {

struct NamedParams {
  std::vector<std::string> names;  // trainable parameter names, in optimizer order
  std::vector<torch::Tensor> params;
};

struct StepContext {
  int64_t epoch = 0;
  int64_t step = 0;         // within the epoch
  int64_t global_step = 0;  // across epochs
  torch::nn::Module* model = nullptr;
  const NamedParams* trainable = nullptr;
  torch::Tensor loss;  // () on device
  Recorder* recorder = nullptr;
};

struct EvalResult {
  std::string split;  // "val" or "test"
  double loss = 0;
  double accuracy = 0;
  double macro_sensitivity = 0;
  double macro_specificity = 0;
  double macro_f1 = 0;
  torch::Tensor confusion;  // (K, K) int64 on CPU
};

struct EpochContext {
  int64_t epoch = 0;
  torch::nn::Module* model = nullptr;
  const NamedParams* trainable = nullptr;
  Recorder* recorder = nullptr;
};

class Observer {
 public:
  virtual ~Observer() = default;
  // After loss.backward(), before clipping: gradients are the raw ones.
  virtual void after_backward(const StepContext& ctx) {}
  // After optimizer.step().
  virtual void after_step(const StepContext& ctx) {}
  // After each evaluation (validation every epoch, test at the end).
  virtual void on_evaluation(const EpochContext& ctx, const EvalResult& result) {}
  // At the end of each epoch, after evaluation.
  virtual void on_epoch_end(const EpochContext& ctx) {}
};

}  // namespace normlab::train
