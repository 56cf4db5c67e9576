#include "data/image_folder.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/progress.h"
#include "data/pil_resize.h"
#include "io/cache.h"
#include "io/image.h"
#include "io/state_dict.h"

namespace normlab::data {
namespace fs = std::filesystem;

const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> ext = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga",
                                               ".psd", ".hdr", ".pic",  ".ppm", ".pgm", ".pnm"};
  return ext;
}

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool is_image(const fs::path& p) {
  const auto& ext = image_extensions();
  return std::find(ext.begin(), ext.end(), lower(p.extension().string())) != ext.end();
}

std::vector<std::string> class_dirs(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_directory() && e.path().filename().string().front() != '.') {
      out.push_back(e.path().filename().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct FileEntry {
  fs::path path;
  int64_t label;
  uintmax_t bytes;
  int64_t mtime_ns;
};

// The split's directory: root/train or root/val when root has them, else root itself (one
// split only).
fs::path split_dir(const ImageFolderOptions& o) {
  const fs::path root(o.root);
  require(!o.root.empty(), "data.path", "an image-folder dataset needs data.path",
          "point it at a directory holding train/ and val/, or class sub-directories");
  require(fs::is_directory(root), "data.path '" + o.root + "'", "is not a directory");
  const bool split_layout = fs::is_directory(root / "train");
  if (o.train) return split_layout ? root / "train" : root;
  require(split_layout && fs::is_directory(root / "val"), "data.path '" + o.root + "'",
          split_layout ? "has train/ but no val/ sub-folder for the evaluation split"
                       : "has no train/ and val/ sub-folders, so no evaluation split",
          "add val/<class>/ images, or set data.test = false and carve validation from the "
          "training images with data.val_fraction");
  return root / "val";
}

std::vector<FileEntry> list_files(const fs::path& dir, const std::vector<std::string>& classes) {
  std::vector<FileEntry> files;
  for (size_t c = 0; c < classes.size(); ++c) {
    std::vector<fs::path> paths;
    for (const auto& e : fs::recursive_directory_iterator(dir / classes[c])) {
      if (e.is_regular_file() && is_image(e.path())) paths.push_back(e.path());
    }
    require(!paths.empty(), (dir / classes[c]).string(), "class '" + classes[c] + "' has no images",
            "image files end in one of .png .jpg .jpeg .bmp .gif .tga .psd .hdr .pic .ppm .pgm "
            ".pnm; remove the empty directory");
    std::sort(paths.begin(), paths.end());
    for (const auto& p : paths) {
      const auto mtime = fs::last_write_time(p).time_since_epoch();
      files.push_back({p, static_cast<int64_t>(c), fs::file_size(p),
                       std::chrono::duration_cast<std::chrono::nanoseconds>(mtime).count()});
    }
  }
  return files;
}

// (3, size, size) uint8: RGB, squashed to size x size by PIL's bilinear filter.
torch::Tensor decode(const fs::path& path, int64_t size) {
  torch::Tensor img = io::read_image(path.string());  // (3, H, W) uint8
  if (img.size(1) == size && img.size(2) == size) return img;
  torch::Tensor x = img.unsqueeze(0).to(torch::kFloat32).div(255.0);
  torch::Tensor y = pil_bilinear_resize(x, size, size);
  return y.mul(255.0).round().clamp(0, 255).to(torch::kUInt8).squeeze(0);
}

}  // namespace

Dataset load_image_folder(const ImageFolderOptions& o) {
  require(o.size >= 1, "data.folder.size", "must be >= 1, got " + std::to_string(o.size));
  const fs::path dir = split_dir(o);
  const std::vector<std::string> classes = class_dirs(dir);
  require(!classes.empty(), dir.string(), "has no class sub-directories",
          "put each class's images in a sub-directory named after the class");
  if (!o.train) {
    const auto train_classes = class_dirs(fs::path(o.root) / "train");
    if (train_classes != classes) {
      std::string only_train, only_val;
      for (const auto& c : train_classes) {
        if (!std::binary_search(classes.begin(), classes.end(), c)) only_train += " " + c;
      }
      for (const auto& c : classes) {
        if (!std::binary_search(train_classes.begin(), train_classes.end(), c)) only_val += " " + c;
      }
      throw Error("data.path '" + o.root + "'", "train/ and val/ have different classes",
                  "only in train/:" + (only_train.empty() ? std::string(" -") : only_train) +
                      "; only in val/:" + (only_val.empty() ? std::string(" -") : only_val));
    }
  }
  const auto files = list_files(dir, classes);

  // The cache key: what the decoded tensor depends on.
  std::string key_text = "normlab image folder v1\nsize " + std::to_string(o.size) + "\n";
  for (const auto& f : files) {
    key_text += fs::relative(f.path, dir).generic_string() + "|" + std::to_string(f.label) + "|" +
                std::to_string(f.bytes) + "|" + std::to_string(f.mtime_ns) + "\n";
  }
  const std::string key = sha256_hex(key_text).substr(0, 32);
  const std::string cache_root = o.cache.empty() ? io::cache_dir() + "/images" : o.cache;
  const std::string cache_file = cache_root + "/" + key + ".safetensors";

  Dataset ds;
  ds.name = "folder";
  ds.class_names = classes;
  ds.num_classes = static_cast<int64_t>(classes.size());
  if (fs::exists(cache_file)) {
    try {
      const io::StateDict cached = io::load_state_dict(cache_file);
      const torch::Tensor* images = cached.find("images");
      const torch::Tensor* labels = cached.find("labels");
      if (images != nullptr && labels != nullptr &&
          images->size(0) == static_cast<int64_t>(files.size())) {
        ds.images = images->clone();
        ds.labels = labels->clone();
        return ds;
      }
    } catch (const Error&) {
      // A damaged cache file is decoded again and replaced below.
    }
  }

  ProgressOptions po;
  po.label = "decoding " + dir.string();
  po.epochs = 0;
  po.steps_per_epoch = static_cast<int64_t>(files.size());
  po.enabled = o.progress;
  Progress bar(po);
  ds.images = torch::empty({static_cast<int64_t>(files.size()), 3, o.size, o.size}, torch::kUInt8);
  ds.labels = torch::empty({static_cast<int64_t>(files.size())}, torch::kInt64);
  for (size_t i = 0; i < files.size(); ++i) {
    ds.images[static_cast<int64_t>(i)].copy_(decode(files[i].path, o.size));
    ds.labels[static_cast<int64_t>(i)] = files[i].label;
    bar.step(0, static_cast<int64_t>(i) + 1, 1);
  }
  bar.finish(std::to_string(files.size()) + " images");

  io::StateDict dict;
  dict.items.emplace_back("images", ds.images);
  dict.items.emplace_back("labels", ds.labels);
  dict.metadata["normlab.classes"] = nlohmann::json(classes).dump();
  dict.metadata["normlab.root"] = dir.string();
  try {
    fs::create_directories(cache_root);
    io::save_safetensors(cache_file, dict);
  } catch (const std::exception&) {
    // No cache (read-only or full disk): the decoded set is used as it is.
  }
  return ds;
}

}  // namespace normlab::data
