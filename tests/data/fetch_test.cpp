#include "data/fetch.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "../io/download_fixtures.h"
#include "../io/test_files.h"
#include "core/files.h"
#include "data/registry.h"

namespace normlab::data {
namespace {

namespace fs = std::filesystem;
using testing::archive_bytes;
using testing::ArchiveKind;
using testing::Bytes;
using testing::EnvGuard;
using testing::expect_error;
using testing::LocalHttpServer;
using testing::TempDir;

std::string as_string(const Bytes& b) { return std::string(b.begin(), b.end()); }

// A CIFAR-10 binary tarball laid out like the real one (cifar-10-batches-bin/...), with
// `records` records per batch file.
std::string fake_cifar10_tarball(int records, bool with_test_batch = true) {
  std::vector<testing::ArchiveEntry> entries = {{"cifar-10-batches-bin/", "", AE_IFDIR}};
  auto batch = [&](int seed) {
    std::vector<Bytes> recs;
    for (int i = 0; i < records; ++i) {
      recs.push_back(testing::cifar_record({static_cast<uint8_t>((seed + i) % 10)}, seed + i));
    }
    return as_string(testing::concat(recs));
  };
  for (int b = 1; b <= 5; ++b) {
    entries.push_back({"cifar-10-batches-bin/data_batch_" + std::to_string(b) + ".bin", batch(b)});
  }
  if (with_test_batch) entries.push_back({"cifar-10-batches-bin/test_batch.bin", batch(9)});
  entries.push_back({"cifar-10-batches-bin/batches.meta.txt", "airplane\n"});
  return archive_bytes(entries, ArchiveKind::kTarGz);
}

class Fetch : public ::testing::Test {
 protected:
  EnvGuard no_proxy_{"no_proxy", "*"};
  EnvGuard no_proxy_upper_{"NO_PROXY", "*"};
  TempDir cache_;
  EnvGuard cache_env_{"NORMLAB_CACHE", cache_.path()};
  LocalHttpServer server_;

  FetchOptions options(const std::string& dest = "") {
    FetchOptions o;
    o.dest_dir = dest;
    o.mirror = server_.url("/mirror");  // no trailing slash: fetch adds it
    o.progress = false;
    return o;
  }
};

TEST_F(Fetch, Cifar10IntoTheCacheWhereLoadDatasetFindsIt) {
  server_.serve("/mirror/cifar-10-binary.tar.gz", fake_cifar10_tarball(2));
  auto r = fetch_dataset("cifar10", options());
  EXPECT_EQ(r.dir, cache_.path() + "/datasets/cifar10");
  EXPECT_EQ(r.dir, default_fetch_dir("cifar10"));
  EXPECT_FALSE(r.already_present);
  EXPECT_EQ(r.train_size, 10);
  EXPECT_EQ(r.test_size, 2);
  EXPECT_TRUE(fs::exists(r.dir + "/cifar-10-batches-bin/data_batch_5.bin"));
  EXPECT_FALSE(fs::exists(r.dir + "/cifar-10-binary.tar.gz"));  // removed after extraction

  // The default search path (no explicit path) finds the fetched files.
  DatasetSource src;
  src.name = "cifar10";
  src.train = false;
  EXPECT_EQ(load_dataset(src).size(), 2);

  // Fetching again downloads nothing.
  auto again = fetch_dataset("cifar10", options());
  EXPECT_TRUE(again.already_present);
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(Fetch, MnistIdxFilesIntoAGivenDirectory) {
  for (const std::string split : {"train", "t10k"}) {
    const uint32_t n = split == "train" ? 6 : 3;
    server_.serve("/mirror/" + split + "-images-idx3-ubyte.gz",
                  as_string(testing::gzip(testing::idx_bytes({n, 28, 28}))));
    server_.serve("/mirror/" + split + "-labels-idx1-ubyte.gz",
                  as_string(testing::gzip(testing::idx_bytes({n}, Bytes(n, 7)))));
  }
  TempDir dest;
  auto r = fetch_dataset("mnist", options(dest.path() + "/mnist"));
  EXPECT_EQ(r.dir, dest.path() + "/mnist");
  EXPECT_EQ(r.train_size, 6);
  EXPECT_EQ(r.test_size, 3);
  EXPECT_EQ(server_.requests().size(), 4u);
}

TEST_F(Fetch, FilesThatDoNotLoadAreAnError) {
  server_.serve("/mirror/cifar-10-binary.tar.gz", fake_cifar10_tarball(2, false));
  const auto dir = default_fetch_dir("cifar10");
  expect_error([&] { fetch_dataset("cifar10", options()); },
               {"dataset 'cifar10'", "do not load", "test_batch.bin", "delete " + dir});
}

TEST_F(Fetch, OfflineNamesTheUrlAndTheCachePath) {
  FetchOptions o = options();
  o.mirror = "http://127.0.0.1:" + std::to_string(testing::unused_local_port()) + "/";
  const auto archive = default_fetch_dir("cifar10") + "/cifar-10-binary.tar.gz";
  expect_error([&] { fetch_dataset("cifar10", o); },
               {o.mirror + "cifar-10-binary.tar.gz", "curl -L -o '" + archive + "'"});
}

TEST_F(Fetch, UnknownOrUnfetchableNamesAreErrors) {
  expect_error([&] { fetch_dataset("imagenet", options()); },
               {"imagenet", "cannot be fetched", "cifar10, cifar100, mnist, fashion-mnist"});
  expect_error([&] { fetch_dataset("synthetic", options()); }, {"synthetic", "cannot be fetched"});
  EXPECT_TRUE(server_.requests().empty());
}

TEST(FetchTable, EveryFetchableDatasetIsRegistered) {
  const auto names = dataset_names();
  for (const auto& n : fetchable_datasets()) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
}

}  // namespace
}  // namespace normlab::data
