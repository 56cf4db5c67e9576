// The frozen prefix's outputs, computed once per image (and per flip view) and kept as fp16
// in a memory-mapped file under <cache>/features/, keyed by everything they depend on: the
// prefix's parameter and buffer bytes (weights, recalibration), the architecture, the cut
// point, the images' bytes and the preprocessing. A file is verified on open (SHA-256 of its
// data, io::FeatureFile) and spot-checked against a fresh prefix forward; a file that fails
// either is rebuilt. Reused across configurations, epochs, seeds and studies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/batcher.h"
#include "data/dataset.h"
#include "io/feature_file.h"
#include "models/model.h"

namespace normlab::study {

struct FeatureCacheRequest {
  models::Classifier model{nullptr};  // holds the frozen prefix; run in eval mode here
  // What computes the features when set (models::folded_prefix of `model`: the same outputs
  // within 1e-5); `model` still keys the file.
  models::Classifier runner{nullptr};
  int64_t cut = 0;                  // prefix = stages [0, cut)
  std::string architecture;         // model options without the head (JSON text)
  data::BatcherOptions preprocess;  // resize, mean/stddev, device, batch size (no augment)
  int64_t views = 1;                // 1 = as is, 2 = as is + horizontally flipped
  bool channels_last = false;
  std::string split;      // names the build in progress lines ("train", "val", ...)
  bool progress = false;  // images/s and ETA while building
};

struct FeatureCacheResult {
  std::shared_ptr<io::FeatureFile> file;
  bool built = false;
  double seconds = 0;       // spent building (0 when reused)
  int64_t image_views = 0;  // forward passes made while building
};

// Opens the cache file for `dataset` or builds it. Throws Error if the cache directory cannot
// be written (naming it).
FeatureCacheResult cached_prefix_features(const FeatureCacheRequest& request,
                                          const data::Dataset& dataset);

// SHA-256 of the prefix's parameters and buffers (names, shapes and bytes).
std::string prefix_fingerprint(models::Classifier& model, int64_t cut);

}  // namespace normlab::study
