// The loss along the line between the final weights of two runs of a study (Goodfellow et al.
// 2015's linear interpolation, here between two solutions rather than from the start), e.g.
// two seeds of one configuration, or a BN head and its clipped twin: are they in one basin?
// `normlab study interpolate DIR A B` prints it. The runs must share the model architecture;
// the evaluation images are run A's. Two curves: every tensor interpolated, BatchNorm running
// statistics included ("interpolated"), and the parameters only with A's statistics kept
// ("a_stats").
#pragma once

#include <cstdint>
#include <string>

#include "store/records.h"

namespace normlab::study {

struct RunInterpolationOptions {
  std::string study_dir;
  std::string from, to;  // run names, or unique substrings of them
  int64_t points = 25;
  double lo = -0.5, hi = 1.5;  // t range: 0 is run `from`, 1 run `to`
  std::string split = "val";   // "val" (the training images when there is none), "train", "test"
  int64_t images = 512;        // the first images of the split (0 = all)
};

struct RunInterpolation {
  std::string from, to;  // the runs' full names
  store::Surface interpolated;
  store::Surface a_stats;
};

// Throws Error naming the study, the run or the file for a missing store, an unknown,
// ambiguous or incomplete run, weights that are missing or do not fit, or architectures that
// differ.
RunInterpolation interpolate_runs(const RunInterpolationOptions& options);

}  // namespace normlab::study
