// Evaluating every run of a lockstep group on one split: the evaluation source (shared prefix
// or feature cache) is read once per batch for all runs, each run's tail gives its logits,
// with test-time augmentation (mean of the original and mirrored images' logits) when asked.
#pragma once

#include <string>
#include <vector>

#include "study/engine_timing.h"
#include "study/feature_source.h"
#include "study/run_metrics.h"
#include "study/run_state.h"

namespace normlab::study {

std::vector<Evaluation> evaluate_runs(const std::vector<RunState*>& who, FeatureSource& source,
                                      models::ClassifierImpl& prefix, const std::string& split,
                                      int64_t num_classes, torch::Device device,
                                      const RunOptions& lead, EngineTiming& timing, bool progress);

}  // namespace normlab::study
