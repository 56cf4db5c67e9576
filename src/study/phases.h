// Phases within a run (S2: "train the head for 3 epochs, then everything for 5"):
//
//   [[run.phases]]
//   epochs = 3
//   trainable = ["head"]
//   [[run.phases]]
//   epochs = 5
//   trainable = []            # everything
//   optimizer = { lr = 1e-4 }
//   keep_state = false        # the default: a fresh optimizer, as fastai's unfreeze()
//
// A phase sets any of trainable, param_groups, optimizer (keys of it), frozen_bn; the rest
// comes from the run's train table. train.epochs is the sum of the phases' epochs (expand()
// fills it in; a different explicit value is an error). At a phase boundary the trainer
// re-plans its parameters, makes a new optimizer (keep_state = true carries the state of every
// parameter that trained before, e.g. Adam's moments), the learning-rate schedule starts over
// for the phase, and the probes are made anew so that "trainable" selections follow.
// Lockstep groups keep one frozen prefix for the whole run: the shortest of the phases'
// prefixes (a later phase that trains everything leaves none), and the feature cache only when
// it is valid in every phase.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/model.h"
#include "study/config.h"
#include "train/trainer.h"

namespace normlab::study {

struct Phase {
  int64_t first_epoch = 0;  // 0-based
  int64_t epochs = 0;
  train::TrainOptions train;  // the run's train options with the phase's keys over them
  bool keep_state = false;    // carry the optimizer state across the boundary into this phase
};

// The keys a [[run.phases]] entry may set.
const std::vector<std::string>& phase_keys();

// The run's phases from its resolved config: one phase over train.epochs when `phases` is
// empty. `train_options(cfg)` reads the train options of a config (run_options(cfg).train):
// each phase's are those of the config with the phase's keys merged into its train table, so
// every check of the train table applies. Throws Error naming "phases[i].key".
std::vector<Phase> parse_phases(
    const Json& config, const train::TrainOptions& run_train,
    const std::function<train::TrainOptions(const Json&)>& train_options, const std::string& where);

// The index of the phase epoch `epoch` (0-based) belongs to; the last phase past the end.
size_t phase_of(const std::vector<Phase>& phases, int64_t epoch);

// The sum of the phases' epochs of a config (0 when it has none).
int64_t phase_epochs(const Json& config);

// The frozen prefix a run can share for its whole life: the shortest of its phases'.
int64_t run_cut(models::ClassifierImpl& model, const std::vector<Phase>& phases);

// Whether any phase leaves the frozen prefix's BatchNorm layers in train mode.
bool any_phase_updates_frozen_bn(const std::vector<Phase>& phases);

}  // namespace normlab::study
