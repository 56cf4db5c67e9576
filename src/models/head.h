// Classification heads on top of a (N, in_features) embedding.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "models/model.h"
#include "models/norm_slots.h"

namespace normlab::models {

// "linear":   head.0 = Linear(in, classes).
// "mlp":      head.0 Linear(in, hidden), head.1 Norm(hidden), head.2 ReLU, head.3 Dropout,
//             head.4 Linear(hidden, classes). head.1 is Identity for norm "none", so the
//             indices are the same for every norm (STUDIES.md S0/S1).
// "norm_mlp": head.0 Norm(in), head.1 Linear(in, hidden), head.2 ReLU, head.3 Dropout,
//             head.4 Linear(hidden, classes): the norm comes first, on the embedding
//             (STUDIES.md S3, Keras GAP -> BatchNormalization -> Dense -> Dropout -> Dense).
//             head.0 is Identity for norm "none"; the indices never change.
// "torchvision" is built by the Classifier (it depends on the backbone), not here.
// The norm slot ("head.1" for mlp, "head.0" for norm_mlp) goes through `norms`, so
// model.norm_overrides can address it. Throws Error for an unknown kind or bad sizes.
torch::nn::Sequential build_head(const HeadOptions& head, int64_t in_features, int64_t num_classes,
                                 NormFactory& norms);

// Every HeadOptions.kind, "torchvision" included.
std::vector<std::string> head_kinds();

}  // namespace normlab::models
