// Classification loss with a shape check at the boundary: a (N,1) target against (N,C)
// logits would otherwise broadcast or index silently.
#pragma once

#include <torch/torch.h>

namespace normlab::train {

// logits (N, C) float, targets (N) int64 in [0, C) -> mean loss (). Label smoothing eps
// spreads eps/C of the target mass uniformly (Szegedy et al. 2016), as PyTorch does.
torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets,
                            double label_smoothing = 0.0);
// The same per sample: (N) losses.
torch::Tensor cross_entropy_per_sample(const torch::Tensor& logits, const torch::Tensor& targets,
                                       double label_smoothing = 0.0);

}  // namespace normlab::train
