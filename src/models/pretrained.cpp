#include "models/pretrained.h"

#include <filesystem>

#include "core/error.h"
// The one non-core dependency: the cache root is decided in one place for every download.
#include "io/cache.h"

namespace normlab::models {
namespace {

// ImageNet channel statistics used by every torchvision classification model
// (torchvision/transforms/_presets.py, ImageClassification defaults).
constexpr std::array<double, 3> kImageNetMean = {0.485, 0.456, 0.406};
constexpr std::array<double, 3> kImageNetStd = {0.229, 0.224, 0.225};

Preprocessing imagenet_eval(int64_t resize) {
  Preprocessing p;
  p.resize = resize;
  p.crop = 224;
  p.mean = kImageNetMean;
  p.std = kImageNetStd;
  p.interpolation = "bilinear";
  return p;
}

constexpr const char* kTorchvisionLayout = "torchvision-state-dict";

// Source: torchvision's weight enums (torchvision/models/mobilenetv2.py, resnet.py; the
// "Weights" tables of https://pytorch.org/vision/stable/models.html). The 8 hex digits in
// each file name are the start of the file's SHA-256 (torch.hub's check_hash verifies that
// prefix); the full hashes are not published, so only the prefix is stored and checked.
// V1 weights were evaluated with resize 256; the V2 ("new training recipe") weights with
// resize 232, as each enum's `transforms=partial(ImageClassification, crop_size=224,
// resize_size=...)` says.
const std::vector<PretrainedWeights>& table() {
  static const std::vector<PretrainedWeights> entries = {
      {"torchvision:mobilenet_v2:IMAGENET1K_V1", "mobilenet_v2",
       "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth", "b0353104",
       kTorchvisionLayout, 1000, imagenet_eval(256), 71.878},
      {"torchvision:mobilenet_v2:IMAGENET1K_V2", "mobilenet_v2",
       "https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth", "7ebf99e0",
       kTorchvisionLayout, 1000, imagenet_eval(232), 72.154},
      {"torchvision:resnet18:IMAGENET1K_V1", "resnet18",
       "https://download.pytorch.org/models/resnet18-f37072fd.pth", "f37072fd", kTorchvisionLayout,
       1000, imagenet_eval(256), 69.758},
      {"torchvision:resnet50:IMAGENET1K_V1", "resnet50",
       "https://download.pytorch.org/models/resnet50-0676ba61.pth", "0676ba61", kTorchvisionLayout,
       1000, imagenet_eval(256), 76.130},
      {"torchvision:resnet50:IMAGENET1K_V2", "resnet50",
       "https://download.pytorch.org/models/resnet50-11ad3fa6.pth", "11ad3fa6", kTorchvisionLayout,
       1000, imagenet_eval(232), 80.858},
  };
  return entries;
}

}  // namespace

std::string PretrainedWeights::file_name() const { return url.substr(url.rfind('/') + 1); }

std::vector<std::string> pretrained_ids() {
  std::vector<std::string> ids;
  for (const auto& e : table()) ids.push_back(e.id);
  return ids;
}

const PretrainedWeights& find_pretrained(const std::string& id) {
  for (const auto& e : table()) {
    if (e.id == id) return e;
  }
  std::string known;
  for (const auto& e : table()) known += "\n    " + e.id;
  throw Error("weights '" + id + "'", "unknown pretrained weights id; known ids:" + known,
              "or give a path to a local weights file");
}

std::string pretrained_cache_path(const PretrainedWeights& weights) {
  return (std::filesystem::path(io::cache_dir()) / "weights" / weights.file_name()).string();
}

}  // namespace normlab::models
