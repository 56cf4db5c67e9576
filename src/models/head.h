// Classification heads on top of a (N, in_features) embedding.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "models/model.h"

namespace normlab::models {

// "linear": head.0 = Linear(in, classes).
// "mlp":    head.0 Linear(in, hidden), head.1 Norm(hidden), head.2 ReLU, head.3 Dropout,
//           head.4 Linear(hidden, classes). head.1 is Identity for norm "none", so the
//           indices are the same for every norm (STUDIES.md S0/S1).
// Throws Error for an unknown kind or bad sizes.
torch::nn::Sequential build_head(const HeadOptions& head, int64_t in_features, int64_t num_classes,
                                 const nn::NormOptions& norm_options);

}  // namespace normlab::models
