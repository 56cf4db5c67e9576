// Where the time of a study went; stored as meta "engine_timing" (bench/ reads it).
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

namespace normlab::study {

struct EngineTiming {
  double setup_seconds = 0;   // data loading, model building, weights, recalibration
  double train_seconds = 0;   // training loops (prefix + every run's step)
  int64_t train_samples = 0;  // images x runs that trained on them
  double eval_seconds = 0;    // validation and test passes
  int64_t eval_samples = 0;   // images x runs evaluated
  double cache_seconds = 0;   // building feature cache files
  int64_t cache_images = 0;   // image views computed for the cache
  nlohmann::json to_json() const {
    return {{"setup_seconds", setup_seconds}, {"train_seconds", train_seconds},
            {"train_samples", train_samples}, {"eval_seconds", eval_seconds},
            {"eval_samples", eval_samples},   {"cache_seconds", cache_seconds},
            {"cache_images", cache_images}};
  }
};

}  // namespace normlab::study
