// Image-folder datasets (data/image_folder.h) on a generated tree of PNG and JPEG files:
// classes from sub-directories, RGB at the stated size, the decoded-image cache and when it
// is refreshed, and the errors a user meets (truncated files, empty classes, class sets that
// differ, a missing val/).
#include "data/image_folder.h"

#include <gtest/gtest.h>
#include <stb/stb_image_write.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "../io/test_files.h"
#include "core/error.h"
#include "data/pil_resize.h"
#include "data/registry.h"

namespace normlab::data {
namespace {

namespace fs = std::filesystem;

// A w x h image of `channels` channels whose pixels encode (class, index).
std::vector<uint8_t> pixels(int w, int h, int channels, int cls, int index) {
  std::vector<uint8_t> out(static_cast<size_t>(w * h * channels));
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<uint8_t>((cls * 60 + index * 7 + i) % 256);
  return out;
}

void write_png(const fs::path& p, int w, int h, int channels, int cls, int index) {
  fs::create_directories(p.parent_path());
  auto px = pixels(w, h, channels, cls, index);
  ASSERT_NE(stbi_write_png(p.c_str(), w, h, channels, px.data(), w * channels), 0) << p;
}

void write_jpg(const fs::path& p, int w, int h, int cls, int index) {
  fs::create_directories(p.parent_path());
  auto px = pixels(w, h, 3, cls, index);
  ASSERT_NE(stbi_write_jpg(p.c_str(), w, h, 3, px.data(), 95), 0) << p;
}

class ImageFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    root_ = fs::temp_directory_path() / ("normlab_folder_" + std::to_string(rd()));
    // train/: cats (PNG, RGB and grayscale+alpha, odd sizes), dogs (JPEG); val/: one each.
    write_png(root_ / "train/cat/a.png", 40, 30, 3, 0, 0);
    write_png(root_ / "train/cat/b.PNG", 17, 23, 2, 0, 1);
    write_jpg(root_ / "train/dog/x.jpg", 50, 50, 1, 0);
    write_jpg(root_ / "train/dog/sub/y.jpeg", 16, 16, 1, 1);
    std::ofstream(root_ / "train/dog/notes.txt") << "not an image";
    write_png(root_ / "val/cat/c.png", 16, 16, 3, 0, 2);
    write_jpg(root_ / "val/dog/z.jpg", 20, 10, 1, 2);
  }
  void TearDown() override { fs::remove_all(root_); }

  ImageFolderOptions options(bool train = true) const {
    ImageFolderOptions o;
    o.root = root_.string();
    o.train = train;
    o.size = 16;
    o.progress = false;
    o.cache = (root_ / "cache").string();
    return o;
  }
  std::string error_of(const ImageFolderOptions& o) const {
    try {
      load_image_folder(o);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  fs::path root_;
};

TEST_F(ImageFolder, ClassesAreSubDirectoriesAndImagesAreRgbAtTheStatedSize) {
  Dataset train = load_image_folder(options());
  EXPECT_EQ(train.class_names, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(train.num_classes, 2);
  ASSERT_EQ(train.size(), 4);  // notes.txt is not an image
  EXPECT_EQ(train.images.sizes(), (std::vector<int64_t>{4, 3, 16, 16}));
  EXPECT_EQ(train.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(train.labels[0].item<int64_t>(), 0);
  EXPECT_EQ(train.labels[3].item<int64_t>(), 1);
  // A 16x16 image is kept as decoded; a 40x30 one goes through PIL's bilinear filter.
  auto px = pixels(40, 30, 3, 0, 0);
  torch::Tensor src = torch::from_blob(px.data(), {30, 40, 3}, torch::kUInt8)
                          .permute({2, 0, 1})
                          .unsqueeze(0)
                          .to(torch::kFloat32)
                          .div(255.0);
  torch::Tensor want =
      pil_bilinear_resize(src, 16, 16).mul(255.0).round().to(torch::kUInt8).squeeze(0);
  EXPECT_TRUE(torch::equal(train.images[0], want));
  // Grayscale + alpha becomes RGB with equal channels.
  EXPECT_TRUE(torch::equal(train.images[1][0], train.images[1][2]));
  Dataset val = load_image_folder(options(false));
  EXPECT_EQ(val.size(), 2);
  EXPECT_EQ(val.class_names, train.class_names);
  // Through the registry, as a study loads it (its cache under the test's directory).
  normlab::testing::EnvGuard cache("NORMLAB_CACHE", (root_ / "registry-cache").string());
  DatasetSource s;
  s.name = "folder";
  s.path = root_.string();
  s.folder_size = 8;
  EXPECT_EQ(load_dataset(s).images.sizes(), (std::vector<int64_t>{4, 3, 8, 8}));
}

TEST_F(ImageFolder, TheDecodedSetIsCachedUntilAFileChanges) {
  load_image_folder(options());
  ASSERT_EQ(std::distance(fs::directory_iterator(root_ / "cache"), fs::directory_iterator{}), 1);
  // Same size and modification time, now undecodable: the cache is used, nothing is decoded.
  const fs::path a = root_ / "train/cat/a.png";
  const auto mtime = fs::last_write_time(a);
  const auto bytes = fs::file_size(a);
  { std::ofstream(a, std::ios::binary) << std::string(bytes, 'x'); }
  fs::last_write_time(a, mtime);
  EXPECT_EQ(load_image_folder(options()).size(), 4);
  // A newer modification time: decoded again, and the damage is found, naming the file.
  fs::last_write_time(a, mtime + std::chrono::seconds(5));
  const std::string e = error_of(options());
  EXPECT_NE(e.find("a.png"), std::string::npos) << e;
  EXPECT_NE(e.find("cannot decode"), std::string::npos) << e;
}

TEST_F(ImageFolder, BadTreesAreErrorsNamingTheFileOrDirectory) {
  // A truncated JPEG (stb would decode it silently).
  const fs::path x = root_ / "train/dog/x.jpg";
  fs::resize_file(x, fs::file_size(x) / 2);
  std::string e = error_of(options());
  EXPECT_NE(e.find("x.jpg"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated JPEG"), std::string::npos) << e;
  write_jpg(x, 50, 50, 1, 0);
  // A truncated PNG.
  const fs::path b = root_ / "train/cat/b.PNG";
  fs::resize_file(b, fs::file_size(b) - 10);
  e = error_of(options());
  EXPECT_NE(e.find("b.PNG"), std::string::npos) << e;
  write_png(b, 17, 23, 2, 0, 1);
  // An empty class.
  fs::create_directories(root_ / "train/bird");
  e = error_of(options());
  EXPECT_NE(e.find("bird"), std::string::npos) << e;
  EXPECT_NE(e.find("no images"), std::string::npos) << e;
  // Class sets that differ between train/ and val/.
  write_png(root_ / "train/bird/q.png", 16, 16, 3, 2, 0);
  e = error_of(options(false));
  EXPECT_NE(e.find("different classes"), std::string::npos) << e;
  EXPECT_NE(e.find("only in train/: bird"), std::string::npos) << e;
  // One split only: no val/.
  fs::remove_all(root_ / "val");
  e = error_of(options(false));
  EXPECT_NE(e.find("no val/"), std::string::npos) << e;
  EXPECT_NE(e.find("data.test = false"), std::string::npos) << e;
  // Not a directory.
  ImageFolderOptions missing = options();
  missing.root = (root_ / "nope").string();
  EXPECT_NE(error_of(missing).find("is not a directory"), std::string::npos);
}

}  // namespace
}  // namespace normlab::data
