// The identity of a run's lockstep group: runs with equal keys share their batches and their
// frozen prefix, and train together.
#pragma once

#include <string>

#include "study/config.h"

namespace normlab::study {

std::string group_key(const Json& config);

}  // namespace normlab::study
