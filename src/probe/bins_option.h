// The bin options shared by the histogram probes: bins, scale and range, checked once.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "train/histogram.h"

namespace normlab::probe {

// Reads {bins, scale, range = [lo, hi]} of a probe's options. Throws Error naming
// `where` + "probe.<probe>.<key>" for bins < 1, an unknown scale or an empty range.
train::BinSpec bin_spec(const nlohmann::json& options, const std::string& probe,
                        const std::string& where);

}  // namespace normlab::probe
