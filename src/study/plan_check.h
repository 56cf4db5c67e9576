// Checks a plan against the models it will build, before any store is opened or any run
// trains: every module-path pattern of every run (train.trainable, train.param_groups,
// model.norm_overrides, probe parameter selections) must match something in its model, so a
// typo fails in seconds instead of after an hour of pretraining. (model.weights_skip is
// matched against the weights file's names, checked when the weights load.)
#pragma once

#include "study/spec.h"

namespace normlab::study {

// Builds each distinct model of the plan once (CPU, no weights) and checks its runs'
// patterns. Throws Error naming the study file, the run, the key and the pattern.
void check_plan(const Plan& plan, const std::string& where);

}  // namespace normlab::study
