#include "train/loss.h"

#include "core/error.h"

namespace normlab::train {

torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets,
                            double label_smoothing) {
  return cross_entropy_per_sample(logits, targets, label_smoothing).mean();
}

torch::Tensor cross_entropy_per_sample(const torch::Tensor& logits, const torch::Tensor& targets,
                                       double label_smoothing) {
  TORCH_CHECK(logits.dim() == 2, "cross_entropy: logits must be (N, C), got ", logits.sizes());
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0),
              "cross_entropy: targets must be (N) with N = ", logits.size(0), ", got ",
              targets.sizes());
  TORCH_CHECK(targets.scalar_type() == torch::kLong, "cross_entropy: targets must be int64");
  require(label_smoothing >= 0 && label_smoothing < 1, "train.label_smoothing",
          "must be in [0, 1), got " + std::to_string(label_smoothing));
  torch::Tensor logp = torch::log_softmax(logits, 1);                    // (N, C)
  torch::Tensor nll = -logp.gather(1, targets.unsqueeze(1)).squeeze(1);  // (N)
  if (label_smoothing == 0) return nll;
  torch::Tensor uniform = -logp.mean(1);  // (N): cross-entropy against the uniform target
  return (1 - label_smoothing) * nll + label_smoothing * uniform;
}

}  // namespace normlab::train
