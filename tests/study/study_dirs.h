// Helpers shared by the study tests: a fresh per-process study directory and runner options
// for a quiet, single-threaded (bit-reproducible) run into it.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "study/runner.h"

namespace normlab::study::testing {

inline std::filesystem::path fresh_dir(const std::string& name) {
  std::filesystem::path d = std::filesystem::temp_directory_path() /
                            ("normlab_study_" + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(d);
  return d;
}

inline RunnerOptions runner(const std::filesystem::path& dir) {
  RunnerOptions o;
  o.out_dir = dir.string();
  o.threads = 1;
  o.progress = false;
  return o;
}

}  // namespace normlab::study::testing
