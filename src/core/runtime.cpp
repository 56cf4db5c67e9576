#include "core/runtime.h"

#include <cstdlib>
#include <limits>
#include <thread>

#include "core/error.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <unistd.h>
#endif

namespace normlab {

void keep_freed_memory() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_MAX, 0);                                      // every block from the heap
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());  // nor trimmed
#endif
}

void sleep_idle_openmp_threads(char** argv) {
#if defined(__linux__)
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;  // the user's choice stands
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure
#else
  (void)argv;
#endif
}

void release_free_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

int apply_threads(int requested) {
  int n = requested;
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  return torch::get_num_threads();
}

void apply_seed(uint64_t seed) { torch::manual_seed(seed); }

torch::Generator make_generator(uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return gen;
}

torch::Tensor to_device(const torch::Tensor& t, torch::Device device) {
  return t.to(device, /*non_blocking=*/true);
}

torch::Device parse_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::kCUDA : torch::kCPU;
  try {
    torch::Device device(name);
    if (device.is_cuda() && !torch::cuda::is_available()) {
      throw Error("device '" + name + "'", "CUDA is not available in this build or machine",
                  "use device = \"cpu\" or \"auto\"");
    }
    return device;
  } catch (const c10::Error&) {
    throw Error("device '" + name + "'", "not a device name",
                "use \"cpu\", \"cuda\", \"cuda:N\" or \"auto\"");
  }
}

}  // namespace normlab
