// Pretrained weights by id ("torchvision:mobilenet_v2:IMAGENET1K_V1"): where to download
// them, how to check them, which architecture they fit and how their inputs were
// preprocessed. A plain data table; loading the weights into a model is io/'s and models/'
// job, downloading them is io/download's.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace normlab::models {

// Evaluation transform the weights were trained for (torchvision's ImageClassification
// preset): resize the shorter side to `resize`, center-crop `crop` x `crop`, scale to [0, 1],
// normalize per channel with mean/std.
struct Preprocessing {
  int64_t resize = 256;
  int64_t crop = 224;
  std::array<double, 3> mean{};  // RGB
  std::array<double, 3> std{};   // RGB
  std::string interpolation = "bilinear";
};

struct PretrainedWeights {
  std::string id;            // "<source>:<architecture>:<weights name>"
  std::string architecture;  // models registry name: "mobilenet_v2", "resnet18", "resnet50"
  std::string url;
  // SHA-256 of the file in hex. Only a prefix (8 digits, the one in the file name) is known
  // for torchvision's files; io::download_file checks a prefix as far as it goes.
  std::string sha256;
  std::string layout;  // file layout: "torchvision-state-dict" (.pth, zip + pickle)
  int64_t num_classes = 1000;
  Preprocessing preprocessing;
  double imagenet_top1 = 0;  // ImageNet-1k val acc@1 reported with the weights (percent)

  // File name in the URL (the last path component).
  std::string file_name() const;
};

// The entry for `id`; throws Error listing every known id when there is none.
const PretrainedWeights& find_pretrained(const std::string& id);

// Every registered id, in table order.
std::vector<std::string> pretrained_ids();

// Where the file is kept: io::cache_dir()/weights/<file name>.
std::string pretrained_cache_path(const PretrainedWeights& weights);

}  // namespace normlab::models
