// What this build of normlab is: `normlab --version`, `normlab doctor` and every study store
// name the version, the git commit it was built from and the LibTorch it runs on.
#pragma once

#include <string>

namespace normlab {

std::string normlab_version();   // "0.1.0" (CMake's project version)
std::string git_commit();        // "262d9cd1a2b3", "...-dirty", or "unknown" (not from git)
std::string libtorch_version();  // LibTorch's version at compile time: "1.13.0"
// "normlab 0.1.0 (commit 262d9cd1a2b3, LibTorch 1.13.0)"
std::string version_line();

}  // namespace normlab
