#include "train/autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace normlab::train {
namespace {

// LibTorch 2.4 replaced the CUDA-specific autocast switches by per-device-type ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool cuda_autocast_enabled() { return at::autocast::is_autocast_enabled(at::kCUDA); }
void set_cuda_autocast(bool on) {
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCUDA, on);
}
#else
bool cuda_autocast_enabled() { return at::autocast::is_enabled(); }
void set_cuda_autocast(bool on) {
  at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
  at::autocast::set_enabled(on);
}
#endif

}  // namespace

AutocastGuard::AutocastGuard(torch::Device device, const std::string& precision)
    : active_(device.is_cuda() && precision == "bf16") {
  if (!active_) return;
  was_enabled_ = cuda_autocast_enabled();
  set_cuda_autocast(true);
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  set_cuda_autocast(was_enabled_);
  at::autocast::clear_cache();
}

}  // namespace normlab::train
