// Normalization layers chosen by name, everywhere a model has a norm slot:
//   bn     BatchNorm (1d for vectors, 2d for maps)
//   ln     LayerNorm over all non-batch axes (vectors: features; maps: C,H,W with
//          per-channel affine, i.e. GroupNorm with one group)
//   gn:G   GroupNorm with G groups (vectors are treated as (N, C, 1))
//   in     InstanceNorm with affine (maps only; refused for vectors)
//   frn    Filter Response Normalization + TLU (Singh & Krishnan 2020). On vectors (or any
//          1x1 spatial extent) nu^2 = x^2 and FRN degenerates to sign(x); there the learned
//          epsilon of section 3.2 (eps = eps0 + |eps_l|) is used.
//   frn:mean  FRN variant for vectors that averages x^2 over the feature axis instead.
//   none   identity
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace normlab::nn {

struct NormOptions {
  double eps = 1e-5;      // BN/LN/GN/IN eps (PyTorch default); FRN uses eps0 = 1e-6
  double momentum = 0.1;  // BN running-statistics momentum (PyTorch convention)
};

enum class NormInput { kVector, kMap };  // (N, C) or (N, C, H, W)

struct NormSpec {
  std::string kind;       // "bn", "ln", "gn", "in", "frn", "none"
  int64_t groups = 0;     // gn only
  bool frn_mean = false;  // frn:mean
  std::string text;       // original spelling, for messages
};

// Parses "bn", "gn:16", ... Throws Error naming the value and listing valid names.
NormSpec parse_norm(const std::string& text);

// Builds the layer for `channels` features. Throws Error when the combination is invalid
// (e.g. "in" for vectors, gn groups not dividing channels).
torch::nn::AnyModule make_norm(const std::string& spec, int64_t channels, NormInput input,
                               const NormOptions& options = {});

// Names accepted by parse_norm, with gn given as "gn:G". For listings and tests.
std::vector<std::string> norm_names();

// True if `module` is one of the batch-statistics norms (BatchNorm1d/2d): trainers need this
// to decide the train/eval mode of frozen norm layers.
bool is_batch_norm(const torch::nn::Module& module);

}  // namespace normlab::nn
