// Norm slots: every place a backbone or head puts a normalization layer. Slots are named by
// their module path ("layer1.0.bn2", "features.3.conv.1.1", "head.1"); a NormFactory builds
// each slot with the model's norm unless a per-slot override names it (DESIGN.md: XBNBlock-P2
// is {"layer*.*.bn2", "gn:16"}, GroupNorm in the second slot of every bottleneck).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/path_pattern.h"
#include "nn/norm.h"

namespace normlab::models {

using normlab::path_matches;  // core/path_pattern.h: the one matcher

// Builds norm layers slot by slot, applying overrides (pattern -> norm spec). When several
// overrides match a slot, the last one wins (later entries refine earlier ones).
class NormFactory {
 public:
  // alternate: when not empty, every second batch-statistics slot of the backbone (the 2nd,
  // 4th, ... in build order; head slots excluded) gets this batch-free norm instead (BN-BFN
  // alternating, Huang et al. CVPR 2022 / seed 004); overrides still win.
  NormFactory(std::vector<std::pair<std::string, std::string>> overrides, nn::NormOptions options,
              std::string alternate = "");

  // The layer for the slot at `path`: the last matching override's spec, else `spec`.
  // Throws Error (from nn::make_norm) for invalid combinations.
  torch::nn::AnyModule make(const std::string& path, const std::string& spec, int64_t channels,
                            nn::NormInput input);

  // Throws Error naming the first override that matched no slot, listing a few slot paths,
  // or model.bn_bfn when "alternate" found fewer than two BatchNorm slots to alternate.
  void check_every_override_used() const;

 private:
  std::vector<std::pair<std::string, std::string>> overrides_;
  std::vector<bool> used_;
  nn::NormOptions options_;
  std::string alternate_;
  int64_t batch_slots_ = 0;         // batch-statistics backbone slots seen, for alternate_
  std::vector<std::string> slots_;  // every path asked for, for the error hint
};

// A module that calls norm layers held as AnyModule members (not through a Sequential)
// exposes those members, so that tools such as recalibrate_batchnorm can wrap a slot for
// one pass and put it back.
class NormSlotOwner {
 public:
  virtual ~NormSlotOwner() = default;
  virtual std::vector<torch::nn::AnyModule*> norm_slots() = 0;
};

}  // namespace normlab::models
