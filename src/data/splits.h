// The train / validation / test splits of a run: which dataset files, which classes, how the
// validation set is carved (from the training split or from the official test split) and the
// stratified size limits. A pure function of its options, so every run of a lockstep group
// (and a resumed run) sees the same images.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/registry.h"

namespace normlab::data {

struct SplitOptions {
  DatasetSource train_source;  // official training split
  DatasetSource test_source;   // official test split
  std::vector<int64_t> classes;
  double val_fraction = 0.2;
  uint64_t split_seed = 0;
  int64_t train_limit = 0;  // 0 = no limit (a stratified subset otherwise)
  int64_t val_limit = 0;
  bool test = true;
  int64_t test_limit = 0;
  // Where validation comes from: "train" (val_fraction of the training split), "test"
  // (val_fraction of the official test split; the rest stays the test set) or "same" (the
  // training set itself, evaluated without augmentation).
  std::string val_from = "train";
  // Where training comes from: "train" (the official training split) or "test" (the official
  // test split: the full-batch regime of Huang et al. and seed 004, where the test set is both
  // training and evaluation set; needs val_from = "same", and the test set is the same images).
  std::string train_from = "train";
};
// The data table's split keys: the source's (dataset, path, synthetic: one dataset names both
// official splits), classes, val_fraction, split_seed, the limits, test, val_from, train_from.
// Whether val_from suits train_from is the caller's check (study/run_options.cpp).
void describe(SplitOptions& o, OptionFields& f);

struct Splits {
  Dataset train;
  Dataset val;   // size 0 when val_fraction is 0
  Dataset test;  // size 0 when test = false
};

// Loads and splits. Throws Error when the training set ends up empty.
Splits load_splits(const SplitOptions& options);

}  // namespace normlab::data
