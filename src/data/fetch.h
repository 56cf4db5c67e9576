// Downloading datasets into the cache: `normlab data fetch cifar10`. Files come from each
// dataset's official distribution (or a mirror), are extracted when archived, and are then
// read back through load_dataset, so a fetch that succeeds is a dataset that loads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace normlab::data {

struct FetchOptions {
  std::string dest_dir;  // "" = default_fetch_dir(name), where load_dataset looks by default
  // Base URL replacing the official one (each file name is appended to it): an internal
  // mirror, or a local server in tests. "" = the official URLs.
  std::string mirror;
  bool progress = true;
};

struct FetchResult {
  std::string dir;               // where the dataset now is
  int64_t train_size = 0;        // examples in the official training split
  int64_t test_size = 0;         // examples in the official test split
  bool already_present = false;  // nothing was downloaded
};

// Downloads `name` (cifar10, cifar100, mnist, fashion-mnist) into the directory, extracts it
// and checks that both splits load. A dataset that already loads from there is left alone.
// Throws Error for an unknown or unfetchable name (listing the fetchable ones), a failed
// download (naming the URL and where to put the file by hand), or files that do not load.
FetchResult fetch_dataset(const std::string& name, const FetchOptions& options);
FetchResult fetch_dataset(const std::string& name, const std::string& dest_dir = "");

// Names fetch_dataset knows, in table order.
std::vector<std::string> fetchable_datasets();

// io::cache_dir()/datasets/<name>: one of the directories load_dataset searches by default.
std::string default_fetch_dir(const std::string& name);

// The first default location from which `name`'s test split loads, or "" when none does.
std::string locate_dataset(const std::string& name);

}  // namespace normlab::data
