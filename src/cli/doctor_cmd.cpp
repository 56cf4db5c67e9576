// `normlab doctor [--json]`: one screen of what normlab sees on this machine and what to fix.
// Every item gets a verdict (ok / slow / missing), what was found and, unless ok, the fix.
// Rates are measured here, in a few tenths of a second each, not looked up: a reference BLAS
// or a spinning OpenMP pool shows as a number, not as a library name that looks fine.
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "core/blas_library.h"
#include "core/error.h"
#include "core/runtime.h"
#include "core/version.h"
#include "data/fetch.h"
#include "data/registry.h"
#include "io/cache.h"
#include "models/pretrained.h"
#include "report/assets.h"

namespace normlab::cli {
namespace {

namespace fs = std::filesystem;

struct Item {
  std::string name;                                  // "blas", "data:cifar10", ...
  std::string verdict;                               // ok, slow, missing
  std::string detail;                                // what was found
  std::string fix;                                   // what to do ("" when ok)
  nlohmann::json values = nlohmann::json::object();  // measured numbers, paths, for --json
};

Item make(std::string name, std::string verdict, std::string detail, std::string fix = "") {
  return Item{std::move(name), std::move(verdict), std::move(detail), std::move(fix)};
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string human_bytes(uintmax_t bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  return fixed(v, u == 0 ? 0 : 1) + " " + units[u];
}

// Runs `fn` (one call = `flop` floating-point operations) for about `seconds` after a warm-up
// call and returns GFLOP/s.
template <typename F>
double measure_gflops(double flop, double seconds, F&& fn) {
  fn();
  int64_t calls = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    fn();
    ++calls;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return flop * static_cast<double>(calls) / elapsed / 1e9;
}

// The shared library providing BLAS in this process, from the kernel's map of it (symlinks
// such as Debian's libblas.so.3 alternatives are resolved there).
std::string loaded_blas() {
  std::ifstream maps("/proc/self/maps");
  return cpu_blas_in_maps(maps);
}

Item check_blas() {
  const std::string lib = loaded_blas();
  auto a = torch::randn({1024, 1024});
  auto b = torch::randn({1024, 1024});
  const double rate = measure_gflops(2.0 * 1024 * 1024 * 1024, 0.3, [&] { (void)torch::mm(a, b); });
  const bool reference = lib.find("/blas/libblas") != std::string::npos;
  const bool fast_lib = lib.find("openblas") != std::string::npos ||
                        lib.find("mkl") != std::string::npos ||
                        lib.find("blis") != std::string::npos;
  std::string name = lib.empty() ? "built into LibTorch" : lib;
  Item it = make("blas", "ok", name + ": " + fixed(rate, 1) + " GFLOP/s (1024x1024 sgemm)");
  if (reference || (!fast_lib && rate < 20)) {
    it.verdict = "slow";
    it.fix =
        "the reference BLAS is about 10x slower: apt install libopenblas0-pthread "
        "(scripts/setup does)";
  }
  it.values = {{"library", lib}, {"gflops", rate}};
  return it;
}

Item check_onednn() {
  if (!at::hasMKLDNN()) {
    return make("onednn", "slow", "not in this LibTorch: convolutions use the slow fallback",
                "use a LibTorch built with oneDNN (Debian's and upstream's are)");
  }
  torch::NoGradGuard no_grad;
  auto x = torch::randn({8, 64, 56, 56});
  auto w = torch::randn({64, 64, 3, 3});
  const double flop = 2.0 * 8 * 64 * 64 * 9 * 56 * 56;
  const double rate = measure_gflops(flop, 0.3, [&] { (void)torch::conv2d(x, w, {}, 1, 1); });
  Item it = make("onednn", "ok", "available: " + fixed(rate, 1) + " GFLOP/s (3x3 convolution)");
  it.values = {{"gflops", rate}};
  return it;
}

Item check_cuda() {
  const bool available = torch::cuda::is_available();
  const auto count = available ? torch::cuda::device_count() : 0;
  if (available) {
    Item it = make("cuda", "ok",
                   std::to_string(count) + " device(s)" +
                       (torch::cuda::cudnn_is_available() ? ", cuDNN" : ", no cuDNN"));
    it.values = {{"devices", count}};
    return it;
  }
  // A GPU the kernel sees but this LibTorch cannot use is worth fixing; no GPU is not.
  std::error_code ec;
  if (fs::exists("/dev/nvidia0", ec)) {
    return make("cuda", "missing", "an NVIDIA GPU is present but this LibTorch has no CUDA",
                "build against an upstream LibTorch 2.x with CUDA: cmake --preset release "
                "-DCMAKE_PREFIX_PATH=/path/to/libtorch");
  }
  Item it = make("cuda", "ok", "none: studies run on the CPU");
  it.values = {{"devices", 0}};
  return it;
}

Item check_threads() {
  const int threads = apply_threads(0);  // what `study run` uses without --threads
  const unsigned cores = std::thread::hardware_concurrency();
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  std::string detail = std::to_string(threads) + " LibTorch thread(s) on " + std::to_string(cores) +
                       " core(s); OMP_WAIT_POLICY=" + (policy ? policy : "(unset)");
  for (const char* var : {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE"}) {
    if (const char* v = std::getenv(var)) detail += std::string("; ") + var + "=" + v;
  }
  Item it = make("threads", "ok", detail);
  it.values = {{"threads", threads}, {"cores", cores}, {"omp_wait_policy", policy ? policy : ""}};
  const std::string p = policy ? policy : "";
  if (p == "ACTIVE" || p == "active") {
    it.verdict = "slow";
    it.fix =
        "OMP_WAIT_POLICY=ACTIVE makes idle OpenMP threads spin against OpenBLAS's (4.3x slower "
        "on 2 cores): unset it and normlab uses PASSIVE";
  }
  return it;
}

std::vector<Item> check_datasets() {
  std::vector<Item> out;
  const auto fetchable = data::fetchable_datasets();
  for (const auto& name : data::dataset_names()) {
    if (name == "synthetic" || name == "folder") continue;  // generated, or the user's own
    const std::string where = data::locate_dataset(name);
    if (!where.empty()) {
      Item it = make("data:" + name, "ok", where);
      it.values = {{"path", where}};
      out.push_back(it);
      continue;
    }
    const bool can_fetch = std::find(fetchable.begin(), fetchable.end(), name) != fetchable.end();
    Item it = make("data:" + name, "missing", "not in the default locations",
                   can_fetch ? "normlab data fetch " + name +
                                   " (or data.path = DIR holding the files in a study)"
                             : "set data.path = DIR holding the files in a study");
    it.values = {{"path", ""}};
    out.push_back(it);
  }
  return out;
}

std::vector<Item> check_weights() {
  std::vector<Item> out;
  for (const auto& id : models::pretrained_ids()) {
    const auto path = models::pretrained_cache_path(models::find_pretrained(id));
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) {
      Item it = make("weights:" + id, "ok",
                     "cached: " + path + " (" + human_bytes(fs::file_size(path, ec)) + ")");
      it.values = {{"path", path}};
      out.push_back(it);
    } else {
      Item it = make("weights:" + id, "missing", "not cached",
                     "downloaded on first use by a study that names it (needs internet); or "
                     "model.weights = FILE (.pth or .safetensors)");
      it.values = {{"path", ""}};
      out.push_back(it);
    }
  }
  return out;
}

uintmax_t directory_bytes(const fs::path& dir) {
  uintmax_t total = 0;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      const auto s = it->file_size(size_ec);
      if (!size_ec) total += s;
    }
  }
  return total;
}

Item check_cache() {
  const fs::path root = io::cache_dir();
  nlohmann::json sizes = nlohmann::json::object();
  std::string detail = root.string() + ":";
  for (const char* sub : {"features", "weights", "datasets"}) {
    const auto bytes = directory_bytes(root / sub);
    sizes[sub] = bytes;
    detail += std::string(" ") + sub + " " + human_bytes(bytes) + ",";
  }
  // Free space where the cache is or would be created: its nearest existing ancestor.
  fs::path probe = root;
  std::error_code ec;
  while (!probe.empty() && !fs::exists(probe, ec)) probe = probe.parent_path();
  const auto space = fs::space(probe.empty() ? fs::path("/") : probe, ec);
  const uintmax_t free_bytes = ec ? 0 : space.available;
  detail += " " + human_bytes(free_bytes) + " free";
  Item it = make("cache", "ok", detail);
  // S0's feature cache on the full CIFAR-10 is about 3 GB (40k images x 2 views, fp16).
  constexpr uintmax_t kLow = 5'000'000'000;
  if (free_bytes < kLow) {
    it.verdict = "missing";
    it.fix =
        "under 5 GB free for feature caches and downloads: free space, or point "
        "NORMLAB_CACHE at a larger disk";
  }
  it.values = {{"path", root.string()}, {"bytes", sizes}, {"free_bytes", free_bytes}};
  return it;
}

Item check_report_assets() {
  std::error_code ec;
  for (const auto& path : report::plotly_candidates()) {
    if (fs::is_regular_file(path, ec)) {
      Item it = make("report", "ok", "plotly.min.js: " + path);
      it.values = {{"path", path}};
      return it;
    }
  }
  Item it = make("report", "missing", "plotly.min.js not found: reports cannot be written",
                 "run `npm ci` in the normlab source tree, or set NORMLAB_ASSETS to a "
                 "directory holding plotly.js-dist-min/plotly.min.js");
  it.values = {{"path", ""}};
  return it;
}

std::vector<Item> run_checks() {
  std::vector<Item> items;
  Item version = make("normlab", "ok", normlab_version() + ", commit " + git_commit());
  version.values = {{"version", normlab_version()}, {"commit", git_commit()}};
  items.push_back(version);
  Item torch_item = make("libtorch", "ok", libtorch_version());
  torch_item.values = {{"version", libtorch_version()}};
  items.push_back(torch_item);
  items.push_back(check_cuda());
  items.push_back(check_threads());  // first: the rates below use the study's thread count
  items.push_back(check_blas());
  items.push_back(check_onednn());
  for (auto& it : check_datasets()) items.push_back(std::move(it));
  for (auto& it : check_weights()) items.push_back(std::move(it));
  items.push_back(check_cache());
  items.push_back(check_report_assets());
  return items;
}

int doctor(bool json) {
  const auto items = run_checks();
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& it : items) {
      out.push_back({{"name", it.name},
                     {"verdict", it.verdict},
                     {"detail", it.detail},
                     {"fix", it.fix},
                     {"values", it.values}});
    }
    std::printf("%s\n", nlohmann::json{{"items", out}}.dump(2).c_str());
    return 0;
  }
  // Names up to 20 characters align; the long weight ids overflow rather than push every
  // detail off the screen.
  size_t width = 0;
  for (const auto& it : items) width = std::max(width, std::min<size_t>(it.name.size(), 20));
  int problems = 0;
  for (const auto& it : items) {
    std::printf("%-8s %-*s  %s\n", it.verdict.c_str(), static_cast<int>(width), it.name.c_str(),
                it.detail.c_str());
    if (!it.fix.empty()) {
      std::printf("%-8s %-*s  fix: %s\n", "", static_cast<int>(width), "", it.fix.c_str());
    }
    problems += it.verdict != "ok";
  }
  std::printf("\n%d item(s) to look at\n", problems);
  return 0;
}

}  // namespace

void add_doctor_command(CLI::App& app, std::vector<Command>& out) {
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand(
      "doctor", "What normlab sees on this machine (libraries, rates, data, weights, disk)");
  cmd->add_flag("--json", *json, "JSON for scripts");
  out.push_back({cmd, [json] { return doctor(*json); }});
}

}  // namespace normlab::cli
