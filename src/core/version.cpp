#include "core/version.h"

#include <torch/version.h>

#ifndef NORMLAB_VERSION
#error "NORMLAB_VERSION is set by CMakeLists.txt from the project version"
#endif

namespace normlab {

extern const char* const kGitCommit;  // generated: cmake/git_commit.cmake

std::string normlab_version() { return NORMLAB_VERSION; }

std::string git_commit() { return kGitCommit; }

std::string libtorch_version() { return TORCH_VERSION; }

std::string version_line() {
  return "normlab " + normlab_version() + " (commit " + git_commit() + ", LibTorch " +
         libtorch_version() + ")";
}

}  // namespace normlab
