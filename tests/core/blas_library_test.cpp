#include "core/blas_library.h"

#include <gtest/gtest.h>

#include <sstream>

namespace normlab {
namespace {

std::string blas_of(const std::string& maps) {
  std::istringstream in(maps);
  return cpu_blas_in_maps(in);
}

// Lines as /proc/self/maps writes them: address, perms, offset, device, inode, path.
TEST(BlasLibrary, NamesTheCpuBlasAndSkipsCublas) {
  const std::string cuda =
      "7f0000000000-7f0000100000 r-xp 00000000 00:2a 11 /opt/t/nvidia/cu13/lib/libcublasLt.so.13\n"
      "7f0000200000-7f0000300000 r-xp 00000000 00:2a 12 /opt/t/nvidia/cu13/lib/libcublas.so.13\n";
  EXPECT_EQ(blas_of(cuda), "");  // MKL linked into libtorch_cpu: nothing to name
  const std::string debian =
      "7f0000000000-7f0000100000 r-xp 00000000 00:2a 11 /opt/t/nvidia/cu13/lib/libcublasLt.so.13\n"
      "55d000000000-55d000001000 r--p 00000000 08:01 99 [heap]\n"
      "7f0000400000-7f0000500000 r-xp 00000000 08:01 13 "
      "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3\n";
  EXPECT_EQ(blas_of(debian), "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3");
  EXPECT_EQ(blas_of("7f0-7f1 r-xp 0 08:01 1 /opt/intel/lib/libmkl_rt.so.2\n"),
            "/opt/intel/lib/libmkl_rt.so.2");
}

}  // namespace
}  // namespace normlab
