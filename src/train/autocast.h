// Mixed precision on CUDA: autocast to bf16 inside a scope (no loss scaling needed for bf16,
// unlike fp16). "fp32" and every CPU device make the guard a no-op: run_options refuses
// "bf16" on the CPU, where LibTorch 1.13's CPU autocast would slow most ops down.
#pragma once

#include <torch/torch.h>

#include <string>

namespace normlab::train {

class AutocastGuard {
 public:
  AutocastGuard(torch::Device device, const std::string& precision);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  bool was_enabled_ = false;
};

}  // namespace normlab::train
