#include "train/metrics.h"

namespace normlab::train {

torch::Tensor confusion_matrix(const torch::Tensor& preds, const torch::Tensor& targets,
                               int64_t num_classes) {
  TORCH_CHECK(preds.dim() == 1 && targets.dim() == 1 && preds.size(0) == targets.size(0),
              "confusion_matrix: preds and targets must be (N), got ", preds.sizes(), " and ",
              targets.sizes());
  torch::Tensor flat = targets.to(torch::kLong) * num_classes + preds.to(torch::kLong);
  return torch::bincount(flat, /*weights=*/{}, num_classes * num_classes)
      .view({num_classes, num_classes});
}

ClassMetrics metrics_from_confusion(const torch::Tensor& confusion) {
  torch::Tensor c = confusion.to(torch::kCPU, torch::kDouble);
  int64_t k = c.size(0);
  auto a = c.accessor<double, 2>();
  double total = c.sum().item<double>();
  double correct = c.trace().item<double>();
  ClassMetrics m;
  m.accuracy = total > 0 ? 100.0 * correct / total : 0.0;
  double sens = 0, spec = 0, f1 = 0;
  int64_t n_sens = 0, n_spec = 0, n_f1 = 0;
  for (int64_t i = 0; i < k; ++i) {
    double tp = a[i][i], fn = 0, fp = 0;
    for (int64_t j = 0; j < k; ++j) {
      if (j == i) continue;
      fn += a[i][j];
      fp += a[j][i];
    }
    double tn = total - tp - fn - fp;
    if (tp + fn > 0) sens += tp / (tp + fn), ++n_sens;
    if (tn + fp > 0) spec += tn / (tn + fp), ++n_spec;
    if (2 * tp + fp + fn > 0) f1 += 2 * tp / (2 * tp + fp + fn), ++n_f1;
  }
  m.macro_sensitivity = n_sens > 0 ? sens / static_cast<double>(n_sens) : 0.0;
  m.macro_specificity = n_spec > 0 ? spec / static_cast<double>(n_spec) : 0.0;
  m.macro_f1 = n_f1 > 0 ? f1 / static_cast<double>(n_f1) : 0.0;
  return m;
}

}  // namespace normlab::train
