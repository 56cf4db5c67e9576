// A run's metric bookkeeping: evaluation results into the recorder under the names of
// store/metric_names.h, confusion matrices as store::Matrix, and the value a schedule or
// early stopping monitors.
#pragma once

#include <string>
#include <vector>

#include "store/records.h"
#include "train/recorder.h"
#include "train/trainer.h"

namespace normlab::study {

// The evaluation of one run on one split; with TTA also the plain (un-augmented) result.
struct Evaluation {
  train::EvalResult reported;  // with TTA when train.tta
  train::EvalResult plain;     // without TTA (== reported when TTA is off)
};

// "<split>/loss", "<split>/acc", ... for every name of metric::kEvalNames.
void record_eval(train::Recorder& rec, const train::EvalResult& r, const std::string& split,
                 int64_t epoch);

store::Matrix confusion(const train::EvalResult& r, const std::vector<std::string>& labels);

// The value of a monitorable metric (metric::kMonitorable).
double monitored(const std::string& name, const train::EpochStats& stats,
                 const train::EvalResult& val);

}  // namespace normlab::study
