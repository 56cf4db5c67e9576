// Which shared library provides the CPU's BLAS in this process, for `normlab doctor`.
#pragma once

#include <istream>
#include <string>

namespace normlab {

// The first mapped file (lines of /proc/self/maps) whose name says BLAS ("blas", "mkl_rt",
// "libmkl"), skipping GPU BLAS libraries: a CUDA LibTorch maps cuBLAS before anything else and
// links MKL statically, so cuBLAS would be named for a CPU sgemm it does not run. "" when
// none (BLAS built into LibTorch).
std::string cpu_blas_in_maps(std::istream& maps);

}  // namespace normlab
