// The one table of the metric names a run records and the report reads. Writers (trainer,
// study engine) and readers (report, tests) use these names, never their own spellings.
#pragma once

#include <string>
#include <vector>

namespace normlab::store::metric {

// Per-epoch training metrics (on the augmented training batches).
inline const std::string kTrainLoss = "train/loss";  // also a per-step series
inline const std::string kTrainAcc = "train/acc";
inline const std::string kEpochSeconds = "time/epoch_s";
inline const std::string kImagesPerSecond = "train/images_per_s";
inline const std::string kLrFactor = "lr/factor";
inline const std::string kStoppedEpoch = "early_stopping/stopped_epoch";
inline const std::string kBestEpoch = "early_stopping/best_epoch";
// The value early stopping saw (plain validation unless train.tta_monitor).
inline const std::string kMonitored = "early_stopping/monitored";
// Per-step: the global gradient L2 norm before clipping.
inline const std::string kGradNormTotal = "grad_norm/total";
// Per-step: loss and accuracy (percent) on the fixed validation sample every
// train.val_every steps (S2's per-minibatch validation loss).
inline const std::string kStepValLoss = "step_val/loss";
inline const std::string kStepValAcc = "step_val/acc";

// Evaluation metrics of a split ("val", "test", "train_eval"): "<split>/<name>".
inline const std::vector<std::string> kEvalNames = {"loss", "acc", "macro_sensitivity",
                                                    "macro_specificity", "macro_f1"};
inline std::string eval(const std::string& split, const std::string& name) {
  return split + "/" + name;
}
// Validation metrics without test-time augmentation, recorded beside "val/*" when TTA is on.
inline const std::string kValNoTta = "val_no_tta";

// What schedules and early stopping may monitor.
inline const std::vector<std::string> kMonitorable = {"val/loss", "val/acc", "val/macro_f1",
                                                      "train/loss", "train/acc"};

// The order of the report's result table (others follow alphabetically).
inline const std::vector<std::string> kReportOrder = {"val/acc",   "val/loss",     "test/acc",
                                                      "test/loss", "val/macro_f1", "test/macro_f1",
                                                      "train/acc", "train/loss"};
// The metric that ranks configurations in the report.
inline const std::string kRank = "val/acc";

}  // namespace normlab::store::metric
