#include "io/cifar.h"

#include <gtest/gtest.h>

#include <array>

#include "test_files.h"

namespace normlab::io {
namespace {

using testing::Bytes;
using testing::cifar_record;
using testing::expect_error;
using testing::TempDir;

TEST(Cifar, ReadsCifar10Records) {
  TempDir dir;
  auto path = dir.file("data_batch_1.bin");
  testing::write_bytes(
      path, testing::concat({cifar_record({3}, 0), cifar_record({9}, 7), cifar_record({0}, 100)}));
  auto arrays = read_cifar({path}, CifarKind::kCifar10);
  ASSERT_EQ(arrays.images.sizes(), torch::IntArrayRef({3, 3, 32, 32}));
  EXPECT_EQ(arrays.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(arrays.labels.scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(arrays.labels, torch::tensor({3, 9, 0}, torch::kInt64)));
  // Pixel (c, y, x) of record i is byte c*1024 + y*32 + x after the label.
  for (int i = 0; i < 3; ++i) {
    const int seed = std::vector<int>{0, 7, 100}[static_cast<size_t>(i)];
    for (auto [c, y, x] : std::vector<std::array<int, 3>>{{0, 0, 0}, {1, 5, 31}, {2, 31, 7}}) {
      const int j = c * 1024 + y * 32 + x;
      EXPECT_EQ(arrays.images[i][c][y][x].item<int>(), (seed + j) % 256)
          << "record " << i << " pixel " << c << "," << y << "," << x;
    }
  }
}

TEST(Cifar, ConcatenatesFilesInOrder) {
  TempDir dir;
  auto a = dir.file("data_batch_1.bin");
  auto b = dir.file("data_batch_2.bin");
  testing::write_bytes(a, testing::concat({cifar_record({1}, 1), cifar_record({2}, 2)}));
  testing::write_bytes(b, cifar_record({5}, 5));
  auto arrays = read_cifar({a, b}, CifarKind::kCifar10);
  EXPECT_TRUE(torch::equal(arrays.labels, torch::tensor({1, 2, 5}, torch::kInt64)));
  EXPECT_EQ(arrays.images[2][0][0][0].item<int>(), 5);
}

TEST(Cifar, ReadsCifar100FineLabels) {
  TempDir dir;
  auto path = dir.file("train.bin");
  testing::write_bytes(path,
                       testing::concat({cifar_record({19, 99}, 3), cifar_record({4, 42}, 9)}));
  auto arrays = read_cifar({path}, CifarKind::kCifar100);
  EXPECT_TRUE(torch::equal(arrays.labels, torch::tensor({99, 42}, torch::kInt64)));
  // Pixels start after both label bytes.
  EXPECT_EQ(arrays.images[1][0][0][0].item<int>(), 9);
  EXPECT_EQ(arrays.images[1][2][31][31].item<int>(), (9 + 3071) % 256);
}

TEST(Cifar, RefusesPartialRecord) {
  TempDir dir;
  auto path = dir.file("short.bin");
  Bytes bytes = testing::concat({cifar_record({1}, 0), cifar_record({2}, 0)});
  bytes.resize(bytes.size() - 5);
  testing::write_bytes(path, bytes);
  expect_error([&] { read_cifar({path}, CifarKind::kCifar10); },
               {path, "not a whole number of 3073-byte"});
}

TEST(Cifar, RefusesCifar100FileReadAsCifar10) {
  TempDir dir;
  auto path = dir.file("train.bin");
  testing::write_bytes(path, testing::concat({cifar_record({1, 2}, 0), cifar_record({1, 2}, 0)}));
  expect_error([&] { read_cifar({path}, CifarKind::kCifar10); }, {path, "whole number"});
}

TEST(Cifar, RefusesEmptyFileAndEmptyList) {
  TempDir dir;
  auto path = dir.file("empty.bin");
  testing::write_bytes(path, {});
  expect_error([&] { read_cifar({path}, CifarKind::kCifar10); }, {path, "empty"});
  expect_error([&] { read_cifar({}, CifarKind::kCifar10); }, {"no batch files"});
}

TEST(Cifar, RefusesCifar10LabelOutOfRangeNamingRecord) {
  TempDir dir;
  auto good = dir.file("data_batch_1.bin");
  auto bad = dir.file("data_batch_2.bin");
  testing::write_bytes(good, cifar_record({1}, 0));
  testing::write_bytes(
      bad, testing::concat({cifar_record({1}, 0), cifar_record({9}, 0), cifar_record({10}, 0)}));
  expect_error(
      [&] {
        read_cifar({good, bad}, CifarKind::kCifar10);
      },
      {bad, "record 2", "label 10", "[0, 10)"});
}

TEST(Cifar, RefusesCifar100LabelsOutOfRange) {
  TempDir dir;
  auto fine = dir.file("fine.bin");
  testing::write_bytes(fine, testing::concat({cifar_record({0, 0}, 0), cifar_record({3, 100}, 0)}));
  expect_error([&] { read_cifar({fine}, CifarKind::kCifar100); },
               {fine, "record 1", "fine label 100"});
  auto coarse = dir.file("coarse.bin");
  testing::write_bytes(coarse, cifar_record({20, 5}, 0));
  expect_error([&] { read_cifar({coarse}, CifarKind::kCifar100); },
               {coarse, "record 0", "coarse label 20"});
}

}  // namespace
}  // namespace normlab::io
