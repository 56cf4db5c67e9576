// Progress for long work: epoch, step, images/s and ETA. On a terminal one line is
// rewritten in place; otherwise (CI, logs, pipes) a plain line is printed at most every
// `plain_interval_s` seconds and at the end of each epoch. A phase without epochs (a
// feature-cache build, an evaluation pass, a recalibration) sets `epochs = 0`: its lines read
// "<label>: batch 12/625  245 img/s  ETA 2m10s" and `finish` ends it.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace normlab {

struct ProgressOptions {
  std::string label;   // e.g. the run name
  int64_t epochs = 1;  // 0: a phase without epochs
  int64_t steps_per_epoch = 1;
  std::string unit = "batch";  // what a step of a phase (epochs = 0) is, e.g. "point"
  // Plain-mode throttle; NORMLAB_PROGRESS_SECONDS overrides it (a log that wants more or
  // fewer lines).
  double plain_interval_s = 10;
  bool enabled = true;
  // A phase shorter than this that never printed stays silent at `finish`: a two-second
  // evaluation needs no line of its own.
  double quiet_below_s = 3;
  FILE* stream = stderr;
};

class Progress {
 public:
  explicit Progress(ProgressOptions options);

  // Called after each step; `images` is the number of samples that step processed.
  void step(int64_t epoch, int64_t step, int64_t images);
  // Called at the end of an epoch with a short summary (e.g. "val_acc 87.1").
  void epoch_done(int64_t epoch, const std::string& summary);
  // Ends a phase (epochs = 0) with a final line carrying `summary`.
  void finish(const std::string& summary);
  // Formats seconds as "1h02m", "3m05s" or "12s".
  static std::string format_duration(double seconds);
  // Steps left after `step` of `epoch` (0-based; steps count from 1) until the last epoch
  // ends. A Progress may be made per epoch (the lockstep engine makes one per epoch), so the
  // ETA extrapolates this object's own pace over these steps, not over epochs * steps.
  int64_t remaining_steps(int64_t epoch, int64_t step) const;

 private:
  void print(int64_t epoch, int64_t step, bool final_line, const std::string& summary);

  ProgressOptions options_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
  int64_t images_ = 0;
  int64_t steps_done_ = 0;
  bool printed_ = false;
};

}  // namespace normlab
