// Runs a study plan into a study directory: DIR/study.db (the store) and DIR/runs/<hash>/
// (checkpoints and final weights). Runs already complete are skipped; a run interrupted
// after some epochs resumes from its last checkpoint.
#pragma once

#include <string>
#include <vector>

#include "study/spec.h"

namespace normlab::study {

struct RunnerOptions {
  std::string out_dir;
  std::string spec_text;  // recorded in the store
  int threads = 0;        // 0 = all cores
  bool progress = true;
};

struct StudyResult {
  int completed = 0;                  // runs trained to the end in this invocation
  int skipped = 0;                    // already complete in the store
  int failed = 0;                     // runs that raised an error (recorded in the store)
  std::vector<std::string> failures;  // "run name: message"
  double wall_seconds = 0;
};

StudyResult run_study(const Plan& plan, const RunnerOptions& options);

}  // namespace normlab::study
