// Runs the normlab binary built by this tree (NORMLAB_BINARY, set by ctest) as a user would,
// capturing stdout and stderr together.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace normlab::testing {

struct RunResult {
  int code = -1;
  std::string output;
};

inline RunResult run_command(const std::string& command) {
  RunResult r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline RunResult run_normlab(const std::string& args) {
  const char* bin = std::getenv("NORMLAB_BINARY");
  return run_command(std::string(bin != nullptr ? bin : "normlab") + " " + args);
}

// A path inside the source tree (NORMLAB_SOURCE_DIR, set by ctest).
inline std::string source_path(const std::string& rel) {
  const char* dir = std::getenv("NORMLAB_SOURCE_DIR");
  return std::string(dir != nullptr ? dir : ".") + "/" + rel;
}

}  // namespace normlab::testing
