// `normlab data fetch NAME [--dir DIR]` and `normlab data list`.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "data/fetch.h"
#include "data/registry.h"

namespace normlab::cli {
namespace {

struct DataFetchArgs {
  std::string name;
  std::string dir;
  std::string mirror;
  bool quiet = false;
};

int data_fetch(const DataFetchArgs& a) {
  data::FetchOptions options;
  options.dest_dir = a.dir;
  options.mirror = a.mirror;
  options.progress = !a.quiet;
  const auto r = data::fetch_dataset(a.name, options);
  std::printf("normlab: %s %s %s (%lld train / %lld test examples)\n", a.name.c_str(),
              r.already_present ? "already in" : "ready in",
              std::filesystem::absolute(r.dir).string().c_str(),
              static_cast<long long>(r.train_size), static_cast<long long>(r.test_size));
  if (!a.dir.empty() && a.dir != data::default_fetch_dir(a.name)) {
    std::printf("normlab: not a default location: set the dataset path to %s in study files\n",
                a.dir.c_str());
  }
  return 0;
}

int data_list() {
  const auto fetchable = data::fetchable_datasets();
  for (const auto& name : data::dataset_names()) {
    if (name == "synthetic") {
      std::printf("%-14s built in (generated)\n", name.c_str());
      continue;
    }
    if (name == "folder") {
      std::printf("%-14s your images: data.path = DIR with train/<class>/ and val/<class>/\n",
                  name.c_str());
      continue;
    }
    const std::string where = data::locate_dataset(name);
    const bool can_fetch = std::find(fetchable.begin(), fetchable.end(), name) != fetchable.end();
    if (!where.empty()) {
      std::printf("%-14s %s\n", name.c_str(), where.c_str());
    } else {
      std::printf("%-14s not found%s\n", name.c_str(),
                  can_fetch ? ("  (normlab data fetch " + name + ")").c_str() : "");
    }
  }
  return 0;
}

}  // namespace

void add_data_commands(CLI::App& app, std::vector<Command>& out) {
  auto* data = app.add_subcommand("data", "Datasets: download, list");
  data->require_subcommand(1);

  auto fetch_args = std::make_shared<DataFetchArgs>();
  auto* fetch = data->add_subcommand("fetch", "Download a dataset into the cache (or --dir)");
  fetch->add_option("name", fetch_args->name, "Dataset name")
      ->required()
      ->check(CLI::IsMember(data::fetchable_datasets()));
  fetch->add_option("--dir", fetch_args->dir,
                    "Directory to put it in (default: the cache, where studies find it)");
  fetch->add_option("--mirror", fetch_args->mirror,
                    "Base URL to download the files from instead of the official one");
  fetch->add_flag("-q,--quiet", fetch_args->quiet, "No progress lines");
  out.push_back({fetch, [fetch_args] { return data_fetch(*fetch_args); }});

  auto* list = data->add_subcommand("list", "List datasets and where each is found");
  out.push_back({list, [] { return data_list(); }});
}

}  // namespace normlab::cli
