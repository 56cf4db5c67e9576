// Per-minibatch validation (S2: "train and val loss per minibatch"): every train.val_every
// training steps, every active run of a lockstep group is evaluated on the same fixed sample
// of train.val_sample validation images (the unaugmented training images when the run has no
// validation split), recording step_val/loss and step_val/acc at the global step. The sample
// enters at the group's frozen-prefix cut: its prefix features are computed once, or again
// each time when the prefix's BatchNorm statistics move (frozen_bn = "update"). The cost is
// one tail forward per run over the sample, bounded by val_sample.
#pragma once

#include <cstdint>
#include <vector>

#include "data/batcher.h"
#include "study/feature_source.h"
#include "study/run_state.h"

namespace normlab::study {

class StepValidation {
 public:
  // `prefix_moves`: the prefix's BatchNorm layers update their statistics while training.
  StepValidation(const RunOptions& lead, FeatureSources& sources, bool prefix_moves);

  bool enabled() const { return every_ > 0; }
  // Whether validation is due after the step that made the global step count `steps_done`.
  bool due(int64_t steps_done) const { return every_ > 0 && steps_done % every_ == 0; }
  // Evaluates each run on the sample and records at global step steps_done - 1 (the step
  // just taken), without a host synchronisation.
  void record(const std::vector<RunState*>& runs, int64_t steps_done);

 private:
  const std::vector<data::Batch>& sample();

  FeatureSources& sources_;
  int64_t every_;
  int64_t images_;
  bool prefix_moves_;
  std::string split_;
  std::vector<data::Batch> batches_;
};

}  // namespace normlab::study
