// The lockstep engine: runs that share a seed, data pipeline, backbone, weights and frozen
// prefix train together. Each batch is drawn once (common random numbers: every run sees the
// same images, crops, flips and mixes), the frozen prefix runs once per batch (or is read
// from the feature cache), and each run's trainable tail does its own forward, backward and
// step on that output through the trainer's one step. A run trained alone and the same run
// trained in a group compute the same thing: the data order, augmentation draws and dropout
// streams are functions of the run's seed only (see train::TrainOptions::seed).
#pragma once

#include <string>
#include <vector>

#include "store/store.h"
#include "study/engine_timing.h"
#include "study/prefix_key.h"
#include "study/run_state.h"
#include "study/runner.h"
#include "study/spec.h"

namespace normlab::study {

// Trains every member to completion (or resumes it from its checkpoint). A member that fails
// is recorded as failed in the store and left behind; the others go on.
void run_group(const std::vector<GroupMember>& members, store::Store& db,
               const RunnerOptions& options, StudyResult& result, EngineTiming& timing);

}  // namespace normlab::study
