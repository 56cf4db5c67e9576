// Per-layer gradient L2 norms before clipping, every step ("grad_norm/<param name>").
// The norms of one step are stacked into one device tensor and handed to the recorder, so
// the probe adds no host synchronisation.
#pragma once

#include "train/observer.h"

namespace normlab::probe {

class GradNormProbe : public train::Observer {
 public:
  void after_backward(const train::StepContext& ctx) override;

 private:
  std::vector<std::string> names_;  // "grad_norm/<param>", built on first use
};

}  // namespace normlab::probe
