// Progress for long work: epoch, step, images/s and ETA. On a terminal one line is
// rewritten in place; otherwise (CI, logs, pipes) a plain line is printed at most every
// `plain_interval_s` seconds and at the end of each epoch.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace normlab {

struct ProgressOptions {
  std::string label;  // e.g. the run name
  int64_t epochs = 1;
  int64_t steps_per_epoch = 1;
  double plain_interval_s = 10;  // plain-mode throttle
  bool enabled = true;
  FILE* stream = stderr;
};

class Progress {
 public:
  explicit Progress(ProgressOptions options);

  // Called after each step; `images` is the number of samples that step processed.
  void step(int64_t epoch, int64_t step, int64_t images);
  // Called at the end of an epoch with a short summary (e.g. "val_acc 87.1").
  void epoch_done(int64_t epoch, const std::string& summary);
  // Formats seconds as "1h02m", "3m05s" or "12s".
  static std::string format_duration(double seconds);

 private:
  void print(int64_t epoch, int64_t step, bool final_line, const std::string& summary);

  ProgressOptions options_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
  int64_t images_ = 0;
  int64_t steps_done_ = 0;
};

}  // namespace normlab
