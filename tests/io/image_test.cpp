#include "io/image.h"

#include <gtest/gtest.h>
#include <stb/stb_image_write.h>

#include "core/files.h"
#include "test_files.h"

namespace normlab::io {
namespace {

using testing::expect_error;
using testing::TempDir;

// Pixel (y, x) channel c of the test images: distinct values in every position.
uint8_t value(int y, int x, int c) { return static_cast<uint8_t>(40 * y + 10 * x + c); }

std::vector<uint8_t> interleaved(int h, int w, int channels) {
  std::vector<uint8_t> px;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) px.push_back(value(y, x, c));
  return px;
}

void write_png(const std::string& path, int h, int w, int channels) {
  auto px = interleaved(h, w, channels);
  ASSERT_NE(stbi_write_png(path.c_str(), w, h, channels, px.data(), w * channels), 0);
}

TEST(Image, ReadsRgbPngAsChannelsFirst) {
  TempDir dir;
  const auto path = dir.file("rgb.png");
  write_png(path, 3, 5, 3);
  auto img = read_image(path);
  ASSERT_EQ(img.sizes(), torch::IntArrayRef({3, 3, 5}));
  EXPECT_EQ(img.scalar_type(), torch::kUInt8);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 5; ++x) EXPECT_EQ(img[c][y][x].item<int>(), value(y, x, c));
}

TEST(Image, GrayscaleIsReplicatedAndAlphaDropped) {
  TempDir dir;
  const auto gray = dir.file("gray.png");
  write_png(gray, 4, 2, 1);
  auto g = read_image(gray);
  ASSERT_EQ(g.sizes(), torch::IntArrayRef({3, 4, 2}));
  for (int c = 0; c < 3; ++c) EXPECT_EQ(g[c][3][1].item<int>(), value(3, 1, 0));

  const auto rgba = dir.file("rgba.png");
  write_png(rgba, 2, 2, 4);
  auto a = read_image(rgba);
  ASSERT_EQ(a.sizes(), torch::IntArrayRef({3, 2, 2}));
  for (int c = 0; c < 3; ++c) EXPECT_EQ(a[c][1][0].item<int>(), value(1, 0, c));
}

TEST(Image, CorruptOrMissingFileIsAnErrorNamingIt) {
  TempDir dir;
  const auto png = dir.file("ok.png");
  write_png(png, 8, 8, 3);
  auto bytes = read_file_bytes(png);
  const auto truncated = dir.file("truncated.png");
  bytes.resize(bytes.size() / 2);
  testing::write_bytes(truncated, bytes);
  expect_error([&] { read_image(truncated); }, {truncated, "cannot decode image"});

  const auto junk = dir.file("junk.jpg");
  testing::write_bytes(junk, {'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'});
  expect_error([&] { read_image(junk); }, {junk, "cannot decode image"});

  const auto missing = dir.path() + "/missing.png";
  expect_error([&] { read_image(missing); }, {missing});
}

}  // namespace
}  // namespace normlab::io
