// Setting up a lockstep group before its first step: the data splits, the shared prefix
// holder, every run's model (initial weights, imported weights, BN recalibration) and
// trainer, resumed from its checkpoint where one exists.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "data/splits.h"
#include "models/model.h"
#include "store/store.h"
#include "study/run_state.h"
#include "study/runner.h"

namespace normlab::study {

struct GroupModels {
  torch::Device device = torch::kCPU;
  data::Splits splits;
  models::Classifier prefix{nullptr};  // built like every run, never trained
  int64_t cut = 0;                     // the frozen prefix is stages [0, cut)
};

// A run's model before any weights load: sized for the data (channels, resolution, classes)
// and initialised from the run's seed.
models::Classifier build_run_model(const RunOptions& o, const data::Splits& splits);

// runs.front() leads: the group key makes every setting used here equal across runs.
GroupModels setup_group(std::vector<std::unique_ptr<RunState>>& runs, store::Store& db,
                        const RunnerOptions& options);

}  // namespace normlab::study
