#include "io/idx.h"

#include <gtest/gtest.h>

#include "test_files.h"

namespace normlab::io {
namespace {

using testing::Bytes;
using testing::expect_error;
using testing::TempDir;

// The tensor read_idx should give for idx_bytes(dims) with default data.
torch::Tensor expected_tensor(const std::vector<int64_t>& dims) {
  int64_t count = 1;
  for (int64_t d : dims) count *= d;
  return torch::arange(count, torch::kInt64).remainder(251).to(torch::kUInt8).view(dims);
}

TEST(Idx, RoundtripPlain) {
  TempDir dir;
  auto path = dir.file("train-images-idx3-ubyte");
  testing::write_bytes(path, testing::idx_bytes({3, 4, 5}));
  auto t = read_idx(path);
  EXPECT_EQ(t.scalar_type(), torch::kUInt8);
  EXPECT_EQ(t.sizes(), torch::IntArrayRef({3, 4, 5}));
  EXPECT_TRUE(torch::equal(t, expected_tensor({3, 4, 5})));
}

TEST(Idx, RoundtripOneDimensional) {
  TempDir dir;
  auto path = dir.file("labels");
  testing::write_bytes(path, testing::idx_bytes({7}, {9, 8, 7, 6, 5, 4, 3}));
  auto t = read_idx(path);
  EXPECT_TRUE(torch::equal(t, torch::tensor({9, 8, 7, 6, 5, 4, 3}, torch::kUInt8)));
}

TEST(Idx, RoundtripGzipDetectedByMagicNotName) {
  TempDir dir;
  // No .gz suffix: detection must come from the 1f 8b magic.
  auto path = dir.file("images-without-suffix");
  testing::write_bytes(path, testing::gzip(testing::idx_bytes({2, 28, 28})));
  auto t = read_idx(path);
  EXPECT_TRUE(torch::equal(t, expected_tensor({2, 28, 28})));
}

TEST(Idx, ReadsConcatenatedGzipMembers) {
  TempDir dir;
  Bytes raw = testing::idx_bytes({4, 10});
  Bytes first(raw.begin(), raw.begin() + 17);
  Bytes second(raw.begin() + 17, raw.end());
  auto path = dir.file("two-members.gz");
  testing::write_bytes(path, testing::concat({testing::gzip(first), testing::gzip(second)}));
  EXPECT_TRUE(torch::equal(read_idx(path), expected_tensor({4, 10})));
}

TEST(Idx, RefusesTruncatedFile) {
  TempDir dir;
  Bytes raw = testing::idx_bytes({3, 4, 5});
  raw.pop_back();
  auto path = dir.file("truncated");
  testing::write_bytes(path, raw);
  expect_error([&] { read_idx(path); }, {path, "truncated", "59"});
}

TEST(Idx, RefusesTruncatedContentsInsideValidGzip) {
  TempDir dir;
  Bytes raw = testing::idx_bytes({3, 4, 5});
  raw.resize(raw.size() - 10);
  auto path = dir.file("truncated.gz");
  testing::write_bytes(path, testing::gzip(raw));
  expect_error([&] { read_idx(path); }, {path, "truncated", "decompressed"});
}

TEST(Idx, RefusesTrailingBytes) {
  TempDir dir;
  Bytes raw = testing::idx_bytes({3, 4, 5});
  raw.push_back(0);
  raw.push_back(0);
  auto path = dir.file("trailing");
  testing::write_bytes(path, raw);
  expect_error([&] { read_idx(path); }, {path, "2 trailing bytes"});
}

TEST(Idx, RefusesBadMagic) {
  TempDir dir;
  Bytes raw = testing::idx_bytes({3});
  raw[0] = 0x42;
  auto path = dir.file("bad-magic");
  testing::write_bytes(path, raw);
  expect_error([&] { read_idx(path); }, {path, "magic"});
}

TEST(Idx, RefusesNonByteElementType) {
  TempDir dir;
  Bytes raw = testing::idx_bytes({3});
  raw[2] = 0x0d;  // float
  auto path = dir.file("floats");
  testing::write_bytes(path, raw);
  expect_error([&] { read_idx(path); }, {path, "element type 0x0d"});
}

TEST(Idx, RefusesShortHeaderAndZeroDimensions) {
  TempDir dir;
  auto tiny = dir.file("tiny");
  testing::write_bytes(tiny, {0, 0});
  expect_error([&] { read_idx(tiny); }, {tiny, "too short"});

  auto zero = dir.file("zero-dims");
  testing::write_bytes(zero, {0, 0, 0x08, 0});
  expect_error([&] { read_idx(zero); }, {zero, "0 dimensions"});

  auto cut = dir.file("cut-header");
  testing::write_bytes(cut, {0, 0, 0x08, 3, 0, 0, 0, 1});
  expect_error([&] { read_idx(cut); }, {cut, "too short"});
}

TEST(Idx, RefusesCorruptGzip) {
  TempDir dir;
  Bytes gz = testing::gzip(testing::idx_bytes({8, 28, 28}));
  Bytes damaged = gz;
  for (size_t i = 20; i < 40; ++i) damaged[i] ^= 0xa5;
  auto path = dir.file("damaged.gz");
  testing::write_bytes(path, damaged);
  expect_error([&] { read_idx(path); }, {path, "corrupt gzip"});
}

TEST(Idx, RefusesTruncatedGzip) {
  TempDir dir;
  Bytes gz = testing::gzip(testing::idx_bytes({8, 28, 28}));
  gz.resize(gz.size() - 12);
  auto path = dir.file("cut.gz");
  testing::write_bytes(path, gz);
  expect_error([&] { read_idx(path); }, {path, "corrupt gzip", "ends early"});
}

TEST(Idx, RefusesBadGzipChecksum) {
  TempDir dir;
  Bytes gz = testing::gzip(testing::idx_bytes({8, 28, 28}));
  gz[gz.size() - 6] ^= 0xff;  // CRC-32 in the 8-byte trailer
  auto path = dir.file("crc.gz");
  testing::write_bytes(path, gz);
  expect_error([&] { read_idx(path); }, {path, "corrupt gzip"});
}

TEST(Idx, RefusesJunkAfterGzipStream) {
  TempDir dir;
  Bytes gz = testing::gzip(testing::idx_bytes({4}));
  gz.push_back('x');
  auto path = dir.file("junk.gz");
  testing::write_bytes(path, gz);
  expect_error([&] { read_idx(path); }, {path, "1 trailing bytes after the end of the gzip"});
}

TEST(Idx, MissingFileNamesPath) {
  TempDir dir;
  auto path = dir.path() + "/does-not-exist";
  expect_error([&] { read_idx(path); }, {path});
}

}  // namespace
}  // namespace normlab::io
