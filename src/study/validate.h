// `normlab study validate`: everything a study run would refuse, found without training —
// keys, types and module-path patterns (expand, check_plan), datasets that load, weights that
// exist and fit their model — plus the lockstep groups the runner will form and an estimate
// of the wall time from a short measurement of each group's prefix and tail on this machine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "study/spec.h"

namespace normlab::study {

struct GroupEstimate {
  std::vector<std::string> runs;  // run names, in plan order
  int64_t cut = 0;                // frozen prefix = stages [0, cut)
  int64_t stages = 0;             // stages of the model
  bool cached = false;            // the prefix's outputs come from the feature cache
  std::string uncached_reason;    // why not ("" when cached or nothing is frozen)
  int64_t train_images = 0, val_images = 0, test_images = 0;
  int64_t epochs = 0;  // the longest run's
  int64_t steps_per_epoch = 0;
  int64_t batch = 0;
  // Measured on this machine: the prefix's forward per image, one run's training step on a
  // whole batch (tail forward + backward), and the tail's forward per image.
  double prefix_seconds_per_image = 0;
  double tail_step_seconds = 0;
  double tail_eval_seconds_per_image = 0;
  double seconds = 0;  // the group's estimated wall time
};

struct Validation {
  std::string study;
  std::vector<GroupEstimate> groups;  // the pretraining run (if any) first, as it runs
  std::vector<std::string> notes;     // things that will happen but need no fix (downloads)
  double seconds = 0;                 // sum over groups
};

// Throws Error naming the study file (`where`), the run, the key and the value for anything a
// run would refuse. `measure` = false skips the timing (seconds stay 0).
Validation validate_plan(const Plan& plan, const std::string& where, bool measure);

}  // namespace normlab::study
