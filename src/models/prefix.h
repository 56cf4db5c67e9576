// The frozen prefix of a classifier: stages [0, cut) that no run of a lockstep group trains,
// computed once per batch (or once per image, by the feature cache) for every run. What the
// cut is, how the prefix runs, and how its state moves between a group's models.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "models/model.h"

namespace normlab::models {

// The first stage holding a parameter matched by a `trainable` pattern: everything before it
// is the shared prefix. 0 when `trainable` is empty (everything trains).
int64_t cut_point(ClassifierImpl& model, const std::vector<std::string>& trainable);

// forward_prefix(x, cut); in eval mode, where images are independent, in micro-batches of
// kPrefixChunk images: a MobileNetV2 trunk at 224x224 ran 1.2x faster in chunks of 4-8 than
// at batch 64 (activations stay in cache). In train mode BatchNorm needs the whole batch.
constexpr int64_t kPrefixChunk = 8;
torch::Tensor run_prefix(ClassifierImpl& model, const torch::Tensor& x, int64_t cut);

// Copies the parameters (unless buffers_only) and buffers of stages [0, cut) from `from` to
// `to` (same architecture): e.g. the BN running statistics the shared prefix updated.
void copy_prefix(ClassifierImpl& from, ClassifierImpl& to, int64_t cut, bool buffers_only);

// True when a BatchNorm layer (a norm using batch statistics) lives in stages [0, cut).
bool prefix_has_batch_norm(ClassifierImpl& model, int64_t cut);

// The one channels-last helper (STYLE.md rule 5): NHWC is oneDNN's fast layout on CPU and the
// tensor cores' on CUDA. `to_channels_last(module)` converts 4-D weights in place;
// `channels_last(x)` a 4-D batch (other tensors are returned as they are).
void to_channels_last(torch::nn::Module& module);
torch::Tensor channels_last(const torch::Tensor& x);

}  // namespace normlab::models
