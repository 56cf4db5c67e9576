#include "train/loss.h"

#include "core/error.h"

namespace normlab::train {

namespace {

// ATen's cross_entropy_loss, the kernel torch.nn.functional.cross_entropy runs: the same bits
// as a PyTorch script (a log_softmax/gather/mean written here differed in the last bit of the
// loss and its gradient, which Adam amplifies for near-zero gradients; tests/train/
// step_parity_test.cpp).
torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& targets,
                   double label_smoothing, at::Reduction::Reduction reduction) {
  TORCH_CHECK(logits.dim() == 2, "cross_entropy: logits must be (N, C), got ", logits.sizes());
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0),
              "cross_entropy: targets must be (N) with N = ", logits.size(0), ", got ",
              targets.sizes());
  TORCH_CHECK(targets.scalar_type() == torch::kLong, "cross_entropy: targets must be int64");
  require(label_smoothing >= 0 && label_smoothing < 1, "train.label_smoothing",
          "must be in [0, 1), got " + std::to_string(label_smoothing));
  return at::cross_entropy_loss(logits, targets, {}, reduction, -100, label_smoothing);
}

}  // namespace

torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets,
                            double label_smoothing) {
  return loss(logits, targets, label_smoothing, at::Reduction::Mean);
}

torch::Tensor cross_entropy_per_sample(const torch::Tensor& logits, const torch::Tensor& targets,
                                       double label_smoothing) {
  return loss(logits, targets, label_smoothing, at::Reduction::None);
}

}  // namespace normlab::train
