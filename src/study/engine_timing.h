// Where the time of a study went; stored as meta "engine_timing" (bench/ reads it).
#pragma once

#include <chrono>
#include <cstdint>

#include <nlohmann/json.hpp>

namespace normlab::study {

// Wall-clock seconds since `t0`.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The training loop's phases (batch, prefix, steps) are wall-clock spans on the host: exact on
// the CPU, where operations are synchronous; on a GPU they measure launches unless the device
// waits inside them (no synchronisation is added for timing's sake).
struct EngineTiming {
  double setup_seconds = 0;   // data loading, model building, weights, recalibration
  double train_seconds = 0;   // training loops (prefix + every run's step)
  double batch_seconds = 0;   // of which: training batches (decode, augmentation, resize) or
                              // cached features read
  double prefix_seconds = 0;  // of which: the shared frozen prefix's forward
  double step_seconds = 0;    // of which: the runs' training steps (the tails)
  double store_seconds = 0;   // epoch records and checkpoints written
  int64_t train_samples = 0;  // images x runs that trained on them
  double eval_seconds = 0;    // validation and test passes
  int64_t eval_samples = 0;   // images x runs evaluated
  double cache_seconds = 0;   // building feature cache files
  int64_t cache_images = 0;   // image views computed for the cache
  nlohmann::json to_json() const {
    return {{"setup_seconds", setup_seconds},   {"train_seconds", train_seconds},
            {"train_samples", train_samples},   {"eval_seconds", eval_seconds},
            {"eval_samples", eval_samples},     {"cache_seconds", cache_seconds},
            {"cache_images", cache_images},     {"batch_seconds", batch_seconds},
            {"prefix_seconds", prefix_seconds}, {"step_seconds", step_seconds},
            {"store_seconds", store_seconds}};
  }
};

}  // namespace normlab::study
