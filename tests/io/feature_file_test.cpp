// io/feature_file: write/commit/open round trips, and every way a file can be refused.
#include "io/feature_file.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/files.h"
#include "test_files.h"

namespace normlab::io {
namespace {

using testing::Bytes;
using testing::expect_error;
using testing::TempDir;

const std::string kKey = R"({"weights":"abc123","cut":"features.13","preprocess":"center-224"})";

FeatureFileSpec small_spec(int64_t items = 5, int64_t views = 2) {
  return FeatureFileSpec{kKey, items, views, {3, 2, 2}};
}

// Item i of view v: values around 100 * v + i with fractions fp16 has to round.
torch::Tensor features(int64_t view, int64_t first, int64_t count) {
  torch::Tensor base = torch::arange(first, first + count, torch::kFloat32).view({count, 1, 1, 1});
  return base + 100.0 * static_cast<double>(view) + torch::rand({count, 3, 2, 2}) * 0.001 + 0.1;
}

// Writes every row of `spec` (in two uneven chunks per view, last chunk first) and commits.
// Returns what was written, (views, items, *shape) float32.
torch::Tensor write_all(const std::string& path, const FeatureFileSpec& spec) {
  FeatureFileWriter writer(path, spec);
  std::vector<torch::Tensor> views;
  for (int64_t v = 0; v < spec.views; ++v) {
    const int64_t split = spec.items / 2;
    torch::Tensor tail = features(v, split, spec.items - split);
    torch::Tensor head = features(v, 0, split);
    writer.write(v, split, tail);
    writer.write(v, 0, head);
    views.push_back(torch::cat({head, tail}));
  }
  writer.commit();
  return torch::stack(views);
}

TEST(FeatureFile, RoundTripEqualsInputRoundedToFp16) {
  TempDir dir;
  const std::string path = dir.file(feature_file_name(kKey));
  const torch::Tensor written = write_all(path, small_spec());
  const torch::Tensor rounded = written.to(torch::kFloat16).to(torch::kFloat32);
  ASSERT_FALSE(torch::equal(rounded, written));  // the test data does lose precision

  const FeatureFile file = FeatureFile::open(path, kKey);
  EXPECT_EQ(file.spec().key, kKey);
  EXPECT_EQ(file.spec().items, 5);
  EXPECT_EQ(file.spec().views, 2);
  EXPECT_EQ(file.spec().feature_shape, (std::vector<int64_t>{3, 2, 2}));

  const torch::Tensor items = torch::tensor({4, 0, 2, 2, 1}, torch::kLong);
  const torch::Tensor views = torch::tensor({1, 0, 0, 1, 1}, torch::kLong);
  const torch::Tensor got = file.gather(items, views, torch::kCPU);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{5, 3, 2, 2}));
  EXPECT_EQ(got.scalar_type(), torch::kFloat32);
  for (int64_t b = 0; b < 5; ++b) {
    EXPECT_TRUE(torch::equal(got[b], rounded[views[b].item<int64_t>()][items[b].item<int64_t>()]))
        << "row " << b;
  }
  for (int64_t v = 0; v < 2; ++v) {
    const torch::Tensor t = file.view_tensor(v);
    EXPECT_EQ(t.scalar_type(), torch::kFloat16);
    EXPECT_TRUE(torch::equal(t.to(torch::kFloat32), rounded[v]));
  }
  // Index tensors of another integer dtype are accepted; an empty batch gives (0, *shape).
  EXPECT_TRUE(torch::equal(
      file.gather(items.to(torch::kInt32), views.to(torch::kInt32), torch::kCPU), got));
  EXPECT_EQ(
      file.gather(torch::empty({0}, torch::kLong), torch::empty({0}, torch::kLong), torch::kCPU)
          .sizes(),
      (std::vector<int64_t>{0, 3, 2, 2}));
}

TEST(FeatureFile, TwoViewsAreKeptApart) {
  TempDir dir;
  const std::string path = dir.file("f.nlfeat");
  FeatureFileWriter writer(path, FeatureFileSpec{kKey, 3, 2, {4}});
  writer.write(0, 0, torch::ones({3, 4}));
  writer.write(1, 0, -torch::ones({3, 4}, torch::kFloat64));  // any float dtype
  writer.commit();
  const FeatureFile file = FeatureFile::open(path, kKey);
  const torch::Tensor got = file.gather(torch::tensor({1, 1}), torch::tensor({0, 1}), torch::kCPU);
  EXPECT_TRUE(torch::equal(got[0], torch::ones({4})));
  EXPECT_TRUE(torch::equal(got[1], -torch::ones({4})));
}

TEST(FeatureFile, AcceptsAnyFloatDtype) {
  TempDir dir;
  const std::string path = dir.file("f.nlfeat");
  const std::vector<torch::ScalarType> dtypes = {torch::kFloat16, torch::kBFloat16,
                                                 torch::kFloat64};
  FeatureFileWriter writer(path, FeatureFileSpec{kKey, 2, 3, {5}});
  const torch::Tensor values = torch::linspace(-3, 3, 10).view({2, 5});
  for (size_t v = 0; v < dtypes.size(); ++v) {
    writer.write(static_cast<int64_t>(v), 0, values.to(dtypes[v]));
  }
  writer.commit();
  const FeatureFile file = FeatureFile::open(path, kKey);
  for (size_t v = 0; v < dtypes.size(); ++v) {
    SCOPED_TRACE(c10::toString(dtypes[v]));
    EXPECT_TRUE(torch::equal(file.view_tensor(static_cast<int64_t>(v)),
                             values.to(dtypes[v]).to(torch::kFloat16)));
  }
}

TEST(FeatureFile, FileNameIsAHashOfTheKey) {
  EXPECT_EQ(feature_file_name(kKey), sha256_hex(kKey).substr(0, 32) + ".nlfeat");
  EXPECT_NE(feature_file_name(kKey), feature_file_name(kKey + " "));
}

TEST(FeatureFile, DataStartsAt64ByteAlignment) {
  TempDir dir;
  const std::string path = dir.file("f.nlfeat");
  write_all(path, small_spec());
  const Bytes b = read_file_bytes(path);
  ASSERT_GE(b.size(), 16u);
  EXPECT_EQ(std::string(b.begin(), b.begin() + 8), "NLFEAT01");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[static_cast<size_t>(8 + i)];
  EXPECT_EQ((16 + n) % 64, 0u);
  EXPECT_EQ(b.size(), 16 + n + 2 * 5 * 12 * 2);  // views * items * 12 elements * 2 bytes
}

TEST(FeatureFile, ViewTensorOutlivesTheFile) {
  TempDir dir;
  const std::string path = dir.file("f.nlfeat");
  const torch::Tensor written = write_all(path, small_spec());
  torch::Tensor view;
  {
    const FeatureFile file = FeatureFile::open(path, kKey);
    view = file.view_tensor(1);
  }
  EXPECT_TRUE(
      torch::equal(view.to(torch::kFloat32), written[1].to(torch::kFloat16).to(torch::kFloat32)));
}

TEST(FeatureFile, WrongKeyIsRefused) {
  TempDir dir;
  const std::string path = dir.file("f.nlfeat");
  write_all(path, small_spec());
  expect_error([&] { FeatureFile::open(path, "other key"); },
               {path, "key mismatch", kKey, "other key", "delete it; it will be rebuilt"});
}

TEST(FeatureFile, TruncatedFileIsRefused) {
  TempDir dir;
  const std::string path = dir.file("f.nlfeat");
  write_all(path, small_spec());
  Bytes b = read_file_bytes(path);
  b.pop_back();
  testing::write_bytes(path, b);
  expect_error([&] { FeatureFile::open(path, kKey); }, {path, "truncated", "delete it"});
  b.resize(40);  // inside the header
  testing::write_bytes(path, b);
  expect_error([&] { FeatureFile::open(path, kKey); }, {path, "header size", "delete it"});
  b.resize(10);  // inside the preamble
  testing::write_bytes(path, b);
  expect_error([&] { FeatureFile::open(path, kKey); }, {path, "10 bytes", "delete it"});
}

TEST(FeatureFile, FlippedDataByteFailsTheChecksum) {
  TempDir dir;
  const std::string path = dir.file("f.nlfeat");
  write_all(path, small_spec());
  Bytes b = read_file_bytes(path);
  b[b.size() - 7] ^= 0x10;
  testing::write_bytes(path, b);
  expect_error([&] { FeatureFile::open(path, kKey); }, {path, "SHA-256", "corrupt", "delete it"});
}

TEST(FeatureFile, GarbageAndOtherVersionsAreRefused) {
  TempDir dir;
  const std::string path = dir.file("f.nlfeat");
  testing::write_bytes(path, Bytes(100, 0x41));
  expect_error([&] { FeatureFile::open(path, kKey); },
               {path, "not a normlab feature file", "delete it"});

  write_all(path, small_spec());
  Bytes b = read_file_bytes(path);
  b[7] = '2';
  testing::write_bytes(path, b);
  expect_error([&] { FeatureFile::open(path, kKey); }, {path, "version '02'", "delete it"});

  b[7] = '1';
  b[16] = '[';  // the header's opening brace
  testing::write_bytes(path, b);
  expect_error([&] { FeatureFile::open(path, kKey); }, {path, "header", "delete it"});
}

TEST(FeatureFile, MissingFileIsNamed) {
  TempDir dir;
  const std::string path = dir.file("absent.nlfeat");
  expect_error([&] { FeatureFile::open(path, kKey); }, {path, "cannot open"});
}

TEST(FeatureFile, UncommittedWriterLeavesNoFile) {
  TempDir dir;
  const std::string path = dir.file("f.nlfeat");
  {
    FeatureFileWriter writer(path, small_spec());
    writer.write(0, 0, features(0, 0, 5));
    EXPECT_FALSE(std::filesystem::exists(path));  // only the partial file exists yet
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(FeatureFile, CommitNeedsEveryRow) {
  TempDir dir;
  const std::string path = dir.file("f.nlfeat");
  {
    FeatureFileWriter writer(path, small_spec());
    writer.write(0, 0, features(0, 0, 5));
    writer.write(1, 0, features(1, 0, 3));
    writer.write(1, 4, features(1, 4, 1));
    expect_error([&] { writer.commit(); }, {path, "1 of 10 rows", "view 1, item 3"});
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(FeatureFile, BadWritesAreRefused) {
  TempDir dir;
  const std::string path = dir.file("f.nlfeat");
  FeatureFileWriter writer(path, small_spec());
  writer.write(0, 1, features(0, 1, 2));
  expect_error([&] { writer.write(0, 2, features(0, 2, 1)); }, {path, "item 2", "twice"});
  expect_error([&] { writer.write(0, 4, features(0, 4, 2)); }, {path, "rows [4, 6)"});
  expect_error([&] { writer.write(2, 0, features(0, 0, 1)); }, {path, "view 2"});
  expect_error(
      [&] {
        writer.write(0, 0, torch::zeros({1, 12}));
      },
      {path, "[1, 12]", "[B, 3, 2, 2]"});
  expect_error(
      [&] {
        writer.write(0, 0, torch::zeros({1, 3, 2, 2}, torch::kLong));
      },
      {path, "floating"});
  expect_error(
      [&] {
        writer.write(0, 0, torch::full({1, 3, 2, 2}, 70000.0));
      },
      {path, "fp16", "65504"});
  expect_error([&] { writer.write(0, 0, torch::full({1, 3, 2, 2}, NAN)); }, {path, "nan"});
  expect_error([&] { FeatureFileWriter(path, FeatureFileSpec{kKey, 1, 0, {2}}); }, {path, "views"});
  expect_error([&] { FeatureFileWriter(dir.path() + "/no/such/dir/f", small_spec()); },
               {"no/such/dir/f", "cannot create"});
}

TEST(FeatureFile, OutOfRangeGatherIsRefused) {
  TempDir dir;
  const std::string path = dir.file("f.nlfeat");
  write_all(path, small_spec());
  const FeatureFile file = FeatureFile::open(path, kKey);
  expect_error(
      [&] {
        file.gather(torch::tensor({0, 5}), torch::tensor({0, 0}), torch::kCPU);
      },
      {path, "items[1] = 5", "[0, 5)"});
  expect_error([&] { file.gather(torch::tensor({-1}), torch::tensor({0}), torch::kCPU); },
               {path, "items[0] = -1"});
  expect_error([&] { file.gather(torch::tensor({0}), torch::tensor({2}), torch::kCPU); },
               {path, "views[0] = 2", "[0, 2)"});
  expect_error(
      [&] {
        file.gather(torch::tensor({0, 1}), torch::tensor({0}), torch::kCPU);
      },
      {path, "2 entries"});
  expect_error([&] { file.gather(torch::tensor({0.5}), torch::tensor({0}), torch::kCPU); },
               {path, "integer"});
  expect_error([&] { file.view_tensor(2); }, {path, "view 2"});
}

TEST(FeatureFile, GathersOntoCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  TempDir dir;
  const std::string path = dir.file("f.nlfeat");
  const torch::Tensor written = write_all(path, small_spec());
  const FeatureFile file = FeatureFile::open(path, kKey);
  const torch::Tensor got =
      file.gather(torch::tensor({3, 0}), torch::tensor({1, 0}), torch::Device(torch::kCUDA));
  EXPECT_TRUE(got.is_cuda());
  const torch::Tensor rounded = written.to(torch::kFloat16).to(torch::kFloat32);
  EXPECT_TRUE(torch::equal(got.cpu(), torch::stack({rounded[1][3], rounded[0][0]})));
}

}  // namespace
}  // namespace normlab::io
