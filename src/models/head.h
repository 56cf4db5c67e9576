// Classification heads on top of a (N, in_features) embedding.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "models/model.h"
#include "models/norm_slots.h"

namespace normlab::models {

// "linear": head.0 = Linear(in, classes).
// "mlp":    head.0 Linear(in, hidden), head.1 Norm(hidden), head.2 ReLU, head.3 Dropout,
//           head.4 Linear(hidden, classes). head.1 is Identity for norm "none", so the
//           indices are the same for every norm (STUDIES.md S0/S1).
// "torchvision" is built by the Classifier (it depends on the backbone), not here.
// The norm slot "head.1" goes through `norms`. Throws Error for an unknown kind or bad sizes.
torch::nn::Sequential build_head(const HeadOptions& head, int64_t in_features, int64_t num_classes,
                                 NormFactory& norms);

}  // namespace normlab::models
