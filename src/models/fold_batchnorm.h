// BatchNorm folded into the preceding convolution, for a frozen prefix that only ever runs in
// eval mode (the feature cache's build, and the prefix of frozen_bn = "freeze" groups): an
// eval-mode BN after a conv is an affine map per output channel, so
//   BN(conv(x)) = conv'(x),  W' = W * s,  b' = (b - mean) * s + beta,  s = gamma / sqrt(var + eps)
// (per output channel; b = 0 for a conv without bias), and the BN's own pass over the
// activations disappears (Jacob et al. 2018, section 3.2, fold BN for inference).
#pragma once

#include <cstdint>

#include "models/model.h"

namespace normlab::models {

// A copy of `model` whose stages [0, cut) hold the model's current parameters and buffers,
// with every BatchNorm2d that directly follows a Conv2d in a Sequential folded into it and
// replaced by an Identity; in eval mode, on the model's device, channels-last when
// `channels_last`. Only forward_prefix(x, c) for c <= cut is meaningful on the copy: its
// folded BN layers are out of the forward path, so it must not train or be saved. `folded`,
// when given, receives the number of BN layers folded.
Classifier folded_prefix(ClassifierImpl& model, int64_t cut, bool channels_last,
                         int64_t* folded = nullptr);

}  // namespace normlab::models
