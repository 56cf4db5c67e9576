// The lockstep engine: runs that share a seed, data pipeline, backbone, weights and frozen
// prefix train together. Each batch is drawn once (common random numbers: every run sees the
// same images, crops, flips and mixes), the frozen prefix runs once per batch (or is read
// from the feature cache), and each run's trainable tail does its own forward, backward and
// step on that output. A run trained alone and the same run trained in a group compute the
// same thing: the data order, augmentation draws and dropout streams are functions of the
// run's seed only (see train::TrainOptions::seed).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/store.h"
#include "study/runner.h"
#include "study/spec.h"

namespace normlab::study {

// Where the time of a study went; stored as meta "engine_timing" (bench/ reads it).
struct EngineTiming {
  double setup_seconds = 0;   // data loading, model building, weights, recalibration
  double train_seconds = 0;   // training loops (prefix + every run's step)
  int64_t train_samples = 0;  // images x runs that trained on them
  double eval_seconds = 0;    // validation and test passes
  int64_t eval_samples = 0;   // images x runs evaluated
  double cache_seconds = 0;   // building feature cache files
  int64_t cache_images = 0;   // image views computed for the cache
  nlohmann::json to_json() const;
};

// The identity of a run's lockstep group: runs with equal keys train together.
std::string group_key(const Json& config);

struct GroupMember {
  const RunPlan* plan = nullptr;
  store::RunRecord record;
};

// Trains every member to completion (or resumes it from its checkpoint). A member that fails
// is recorded as failed in the store and left behind; the others go on.
void run_group(const std::vector<GroupMember>& members, store::Store& db,
               const RunnerOptions& options, StudyResult& result, EngineTiming& timing);

}  // namespace normlab::study
