// Gradient clipping that never synchronises with the host: the pre-clip norm stays a device
// tensor until the recorder copies a whole epoch's values at once.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "core/option_fields.h"

namespace normlab::train {

struct ClipOptions {
  double max_norm = 0;   // > 0: scale all gradients so their global L2 norm is <= max_norm
  double max_value = 0;  // > 0: clamp every gradient element to [-max_value, max_value]
};
// ClipOptions' keys in the train table: clip_norm (max_norm), clip_value (max_value).
void describe(ClipOptions& o, OptionFields& f);

// Returns the global L2 norm of the gradients before clipping, as a 0-dim float tensor on
// the gradients' device. Norm clipping follows torch.nn.utils.clip_grad_norm_: coefficient
// max_norm / (norm + 1e-6), capped at 1. Parameters without a gradient are skipped.
torch::Tensor clip_gradients(const std::vector<torch::Tensor>& params, const ClipOptions& options);

}  // namespace normlab::train
