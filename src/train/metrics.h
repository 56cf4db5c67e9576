// Classification metrics from a confusion matrix (rows = true class, columns = predicted).
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace normlab::train {

// preds, targets (N) int64 -> (K, K) int64 counts, on the inputs' device (no host sync).
torch::Tensor confusion_matrix(const torch::Tensor& preds, const torch::Tensor& targets,
                               int64_t num_classes);

struct ClassMetrics {
  double accuracy = 0;           // percent
  double macro_sensitivity = 0;  // mean over classes of TP / (TP + FN)
  double macro_specificity = 0;  // mean over classes of TN / (TN + FP)
  double macro_f1 = 0;           // mean over classes of 2TP / (2TP + FP + FN)
};

// A class with no true and no predicted samples has an undefined ratio; it is left out of
// the macro average (sklearn would warn and count 0; leaving it out keeps subsets honest).
ClassMetrics metrics_from_confusion(const torch::Tensor& confusion);

}  // namespace normlab::train
