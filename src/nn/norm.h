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
//   bn:momentum=B  BatchNorm with its own momentum B (running = (1 - B) running + B batch,
//          PyTorch's convention), e.g. per slot through model.norm_overrides (seed 004)
//   dmbn   Dynamic Momentum BatchNorm (nn/dmbn.h; seed 004): momentum chosen per layer and
//          epoch among NormOptions::dmbn_candidates by minimal estimation shift
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/option_fields.h"
#include "nn/dmbn.h"

namespace normlab::nn {

struct NormOptions {
  // User-provided: GCC 12 reports a false -Wmaybe-uninitialized on the vector member when a
  // ModelOptions{} temporary is copied, if this struct is an aggregate.
  NormOptions() {}
  NormOptions(double eps_, double momentum_) : eps(eps_), momentum(momentum_) {}
  double eps = 1e-5;      // BN/LN/GN/IN eps (PyTorch default); FRN uses eps0 = 1e-6
  double momentum = 0.1;  // BN running-statistics momentum (PyTorch convention)
  std::vector<double> dmbn_candidates = DmbnOptions().candidates;
};
// NormOptions' keys in the model table: bn_momentum, bn_eps (the DMBN candidates come from
// model.dmbn, nn::DmbnOptions).
void describe(NormOptions& o, OptionFields& f);

enum class NormInput { kVector, kMap };  // (N, C) or (N, C, H, W)

struct NormSpec {
  std::string kind;                // "bn", "ln", "gn", "in", "frn", "dmbn", "none"
  int64_t groups = 0;              // gn only
  bool frn_mean = false;           // frn:mean
  std::optional<double> momentum;  // bn:momentum=B, overriding NormOptions::momentum
  std::string text;                // original spelling, for messages
};

// Parses "bn", "gn:16", ... Throws Error naming the value and listing valid names.
NormSpec parse_norm(const std::string& text);

// Builds the layer for `channels` features. Throws Error when the combination is invalid
// (e.g. "in" for vectors, gn groups not dividing channels).
torch::nn::AnyModule make_norm(const std::string& spec, int64_t channels, NormInput input,
                               const NormOptions& options = {});

// parse_norm as an options field's check (OptionFields::Check): its Error's problem quotes
// the spelling, e.g. "unknown normalization 'batchnorm'".
void check_norm_spec(const std::string& text);

// Names accepted by parse_norm, with gn given as "gn:G". For listings and tests.
std::vector<std::string> norm_names();

// What the engine needs to know about a norm, asked instead of casting to concrete types.
struct NormTraits {
  bool batch_statistics = false;    // train mode normalises with the batch's statistics
  bool running_statistics = false;  // keeps running estimates that eval mode uses
  bool batch_free = true;           // a sample's output does not depend on the rest of the batch
};

// The norm table: one row per norm kind. Adding a norm = its layer's file + one row here.
struct NormKind {
  std::string name;  // as written in study files ("gn" takes ":G")
  NormTraits traits;
  std::function<torch::nn::AnyModule(
      const NormSpec&, int64_t channels, NormInput, const NormOptions&,
      const std::function<Error(const std::string& why, const std::string& hint)>& refuse)>
      make;
  // True for a layer this row builds (to find the traits of a built model's modules).
  std::function<bool(const torch::nn::Module&)> recognises;
};
const std::vector<NormKind>& norm_table();

// The traits of a built norm layer; nullopt for modules that are not norm layers.
std::optional<NormTraits> norm_traits(const torch::nn::Module& module);

// norm_traits(module)->batch_statistics: trainers decide the mode of frozen norms with it,
// the feature cache whether a prefix depends on the batch, recalibration what to measure.
bool is_batch_norm(const torch::nn::Module& module);

}  // namespace normlab::nn
