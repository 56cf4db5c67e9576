// The identity of what a run's batches and frozen prefix depend on. Runs with equal keys form
// one lockstep group (same batches, prefix run once for all); the feature cache keys its files
// by the model part of it. The key is the whole resolved config minus an explicit list of
// settings that only act on a run's own trainable tail (head, optimizer, clipping, schedules,
// early stopping, probes, ...): a new setting is part of the key until someone decides it is
// tail-only, so it can never silently merge runs whose prefixes differ. A run without a frozen
// prefix (everything trains) keeps no model settings in its key: only its batches are shared.
#pragma once

#include <string>
#include <vector>

#include "study/config.h"

namespace normlab::study {

struct PrefixKey {
  Json value;  // the config without its tail-only settings
  std::string text() const { return value.dump(); }
  // The model settings that decide the prefix's computation, without the weights reference
  // (the feature cache fingerprints the weights' bytes instead).
  Json architecture() const;
};

// The dotted keys that never change the batches or the prefix's output.
const std::vector<std::string>& tail_only_keys();

PrefixKey prefix_key(const Json& config);

// prefix_key(config).text(): runs with equal keys train together.
inline std::string group_key(const Json& config) { return prefix_key(config).text(); }

}  // namespace normlab::study
