// CIFAR binary reader. Record layout from https://www.cs.toronto.edu/~kriz/cifar.html
// ("Binary version"): CIFAR-10 <1 x label><3072 x pixel>, CIFAR-100
// <1 x coarse label><1 x fine label><3072 x pixel>; pixels are the R, G and B planes of a
// 32x32 image, each row-major.
#include "io/cifar.h"

#include "core/error.h"
#include "core/files.h"

namespace normlab::io {
namespace {

constexpr int64_t kSide = 32;                   // CIFAR images are 32x32
constexpr int64_t kPixels = 3 * kSide * kSide;  // 3072 bytes per image
constexpr int64_t kCifar10Classes = 10;         // cifar.html
constexpr int64_t kCifar100Coarse = 20;         // cifar.html: 20 superclasses
constexpr int64_t kCifar100Fine = 100;          // cifar.html: 100 classes

CifarArrays read_one(const std::string& path, CifarKind kind) {
  const bool is100 = kind == CifarKind::kCifar100;
  const int64_t label_bytes = is100 ? 2 : 1;
  const int64_t record = label_bytes + kPixels;
  const std::string format = is100 ? "CIFAR-100" : "CIFAR-10";
  const std::string hint = "expected a " + format + " binary batch file (" +
                           (is100 ? "train.bin / test.bin" : "data_batch_N.bin / test_batch.bin") +
                           ") from https://www.cs.toronto.edu/~kriz/cifar.html";

  auto bytes = read_file_bytes(path);
  const auto size = static_cast<int64_t>(bytes.size());
  require(size > 0, path, "empty file", hint);
  require(size % record == 0, path,
          "size " + std::to_string(size) + " bytes is not a whole number of " +
              std::to_string(record) + "-byte " + format + " records",
          hint);
  const int64_t n = size / record;

  // Label check first, so that an error names the first bad record.
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* rec = bytes.data() + i * record;
    if (is100) {
      require(rec[0] < kCifar100Coarse, path,
              "record " + std::to_string(i) + ": coarse label " + std::to_string(rec[0]) +
                  " is out of range [0, " + std::to_string(kCifar100Coarse) + ")",
              hint);
      require(rec[1] < kCifar100Fine, path,
              "record " + std::to_string(i) + ": fine label " + std::to_string(rec[1]) +
                  " is out of range [0, " + std::to_string(kCifar100Fine) + ")",
              hint);
    } else {
      require(rec[0] < kCifar10Classes, path,
              "record " + std::to_string(i) + ": label " + std::to_string(rec[0]) +
                  " is out of range [0, " + std::to_string(kCifar10Classes) + ")",
              hint);
    }
  }

  // raw is (N, record) and borrows `bytes`; the slices below are copied before it goes away.
  auto raw = torch::from_blob(bytes.data(), {n, record}, torch::kUInt8);
  CifarArrays out;
  out.images = raw.slice(1, label_bytes, record).reshape({n, 3, kSide, kSide}).clone();
  out.labels = raw.select(1, label_bytes - 1).to(torch::kInt64);  // fine label for CIFAR-100
  return out;
}

}  // namespace

CifarArrays read_cifar(const std::vector<std::string>& paths, CifarKind kind) {
  require(!paths.empty(), "read_cifar", "no batch files given");
  std::vector<torch::Tensor> images;
  std::vector<torch::Tensor> labels;
  for (const auto& path : paths) {
    auto part = read_one(path, kind);
    images.push_back(part.images);
    labels.push_back(part.labels);
  }
  if (paths.size() == 1) return {images[0], labels[0]};
  return {torch::cat(images), torch::cat(labels)};
}

}  // namespace normlab::io
