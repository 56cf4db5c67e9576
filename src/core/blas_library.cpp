#include "core/blas_library.h"

#include <array>
#include <filesystem>

namespace normlab {

std::string cpu_blas_in_maps(std::istream& maps) {
  static const std::array<const char*, 3> kGpu = {"cublas", "hipblas", "rocblas"};
  std::string line;
  while (std::getline(maps, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string file = std::filesystem::path(path).filename().string();
    bool gpu = false;
    for (const char* g : kGpu) gpu = gpu || file.find(g) != std::string::npos;
    if (gpu) continue;
    if (file.find("blas") != std::string::npos || file.find("mkl_rt") != std::string::npos ||
        file.find("libmkl") != std::string::npos) {
      return path;
    }
  }
  return "";
}

}  // namespace normlab
