// One run of a lockstep group: its options and directory, its model and trainer, its probes,
// learning-rate schedule, early stopping and best weights, and how it resumes from its
// checkpoint. The group loop (study/lockstep.cpp) drives many of these in step.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"
#include "store/store.h"
#include "study/run_options.h"
#include "study/run_paths.h"
#include "study/spec.h"
#include "train/early_stopping.h"
#include "train/schedule.h"
#include "train/trainer.h"

namespace normlab::study {

struct GroupMember {
  const RunPlan* plan = nullptr;
  store::RunRecord record;
};

struct RunState {
  RunState(GroupMember ref, const std::string& out_dir);

  const std::string& name() const { return ref.plan->name; }
  int64_t id() const { return ref.record.id; }

  // Builds the trainer (the model's tail enters at `cut`), the probes, the schedule and early
  // stopping; resumes from the checkpoint when `resume`. Drops the store's records of epochs
  // the checkpoint does not cover.
  void make_trainer(int64_t cut, torch::Device device, int64_t train_size, bool resume,
                    store::Store& db);
  // Checkpoint after `epoch` (model, optimizer, RNG, schedule, early stopping).
  void save_checkpoint(int64_t epoch);
  // Keeps the current weights as the best ones (in memory and in best.pt).
  void remember_best();
  // Loads the best weights kept by remember_best (or found on resume).
  void restore_best();
  // True when the run's last checkpoint is final (all epochs, or stopped early).
  bool ended_in_checkpoint() const;

  // Phases (study/phases.h): enters the phase of `epoch` if the run is not in it yet.
  void sync_phase(int64_t epoch);
  const Phase& current_phase() const { return o.phases[phase]; }
  // Steps and epochs counted from the start of the current phase (its schedule's clock).
  int64_t phase_step() const;
  int64_t phase_epoch(int64_t epoch) const { return epoch - current_phase().first_epoch; }

  // The probes (made anew at each phase boundary, so that "trainable" follows the phase) and
  // DMBN's adoption, as the trainer's observers; the phase's schedule.
  void attach_observers();
  void make_schedule();

  GroupMember ref;
  RunOptions o;
  RunPaths paths;
  models::Classifier model{nullptr};
  std::unique_ptr<train::Trainer> trainer;
  std::vector<std::unique_ptr<train::Observer>> probes;
  std::unique_ptr<train::Observer> dmbn;  // DMBN momentum adoption, when the model has DMBN
  std::unique_ptr<train::LrSchedule> schedule;
  std::unique_ptr<train::EarlyStopping> stopper;
  std::string best_state;  // model archive bytes of the best epoch (early stopping)
  int64_t start_epoch = 0;
  bool progress = true;  // the study's progress lines (-q: off); long probes print one too
  int64_t epochs_done = 0;
  size_t phase = 0;  // index into o.phases
  int64_t steps_per_epoch = 0;
  bool done = false;  // finished, stopped early or failed
  bool failed = false;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  train::EpochStats stats;
  train::EvalResult val;
};

}  // namespace normlab::study
