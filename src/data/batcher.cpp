#include "data/batcher.h"

#include <algorithm>
#include <utility>

#include "core/error.h"
#include "core/runtime.h"
#include "core/seed_mix.h"

namespace normlab::data {
namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

uint64_t epoch_seed(uint64_t seed, int64_t epoch) {
  return splitmix64(splitmix64(seed) + static_cast<uint64_t>(epoch));
}

Batcher::Batcher(const Dataset& dataset, BatcherOptions options, uint64_t seed)
    : options_(std::move(options)), seed_(seed), gen_(make_generator(epoch_seed(seed, 0))) {
  dataset.validate();
  const std::string subject = "batcher for dataset '" + dataset.name + "'";
  require(options_.batch_size > 0, subject,
          "batch_size must be positive, got " + std::to_string(options_.batch_size));
  options_.augment.validate();
  require(options_.resize >= 0, subject,
          "resize must be >= 0, got " + std::to_string(options_.resize));
  const int64_t channels = dataset.images.size(1);
  require(options_.mean.size() == options_.stddev.size(), subject,
          std::to_string(options_.mean.size()) + " mean values but " +
              std::to_string(options_.stddev.size()) + " stddev values");
  require(options_.mean.empty() || static_cast<int64_t>(options_.mean.size()) == channels, subject,
          "normalisation has " + std::to_string(options_.mean.size()) +
              " channels but the images have " + std::to_string(channels),
          "pick a preset made for this dataset (e.g. \"cifar\" for 3 channels, \"mnist\" for 1)");
  for (double s : options_.stddev) {
    require(s > 0.0, subject, "stddev values must be positive, got " + std::to_string(s));
  }

  dataset_ = dataset;
  dataset_.images = dataset.images.to(options_.device);
  dataset_.labels = dataset.labels.to(options_.device);
  if (!options_.mean.empty()) {
    auto opts = torch::TensorOptions().dtype(torch::kFloat32);
    mean_ = torch::tensor(options_.mean, opts).view({1, channels, 1, 1}).to(options_.device);
    stddev_ = torch::tensor(options_.stddev, opts).view({1, channels, 1, 1}).to(options_.device);
  }
  start_epoch(0);
}

int64_t Batcher::batches_per_epoch() const {
  const int64_t n = dataset_.size();
  const int64_t b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

void Batcher::start_epoch(int64_t epoch) {
  gen_ = make_generator(epoch_seed(seed_, epoch));
  const int64_t n = dataset_.size();
  order_ =
      options_.shuffle ? torch::randperm(n, gen_, torch::kInt64) : torch::arange(n, torch::kInt64);
  cursor_ = 0;
}

bool Batcher::next(Batch& batch) {
  const int64_t n = dataset_.size();
  const int64_t b = std::min(options_.batch_size, n - cursor_);
  if (b <= 0 || (options_.drop_last && b < options_.batch_size)) {
    cursor_ = n;
    return false;
  }
  auto idx = to_device(order_.slice(0, cursor_, cursor_ + b), options_.device);
  cursor_ += b;

  // (B, C, H, W) uint8 -> float in [0, 1]
  auto x = dataset_.images.index_select(0, idx).to(torch::kFloat32).div_(255.0);
  // Random draws always happen on the CPU generator, in a fixed order, then move to the
  // device, so CPU and CUDA runs see the same augmentation.
  // (B, C, H', W')
  x = geometric_augment(x, options_.augment, options_.resize, gen_, options_.resize_filter);
  if (mean_.defined()) x = x.sub_(mean_).div_(stddev_);
  auto y = dataset_.labels.index_select(0, idx);  // (B) int64

  batch.y2 = torch::Tensor();
  batch.lam = torch::Tensor();
  if (mixing_active(options_.augment)) {
    // On the normalised batch, so a blend mixes exactly the values the model would see.
    auto draws = draw_mixing(options_.augment, b, x.size(2), x.size(3), gen_);
    x = apply_mixing(x, draws);
    batch.y2 = y.index_select(0, to_device(draws.partner, options_.device));
    batch.lam = to_device(draws.lam, options_.device);
  }
  batch.x = x;  // (B, C, H', W') float32
  batch.y = y;
  return true;
}

// Per-channel mean and standard deviation of pixels scaled to [0, 1].
NormalizePreset normalize_preset(const std::string& name) {
  // CIFAR-10 training set as used by kuangliu/pytorch-cifar (main.py). The stddev values
  // are not the per-pixel std (that is about 0.247, 0.243, 0.261; see that repository's
  // issue #19) but they are the de facto standard, so results stay comparable.
  if (name == "cifar") return {{0.4914, 0.4822, 0.4465}, {0.2023, 0.1994, 0.2010}};
  // ImageNet training set: torchvision.models documentation and pytorch/examples
  // imagenet/main.py.
  if (name == "imagenet") return {{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
  // MNIST training set: pytorch/examples mnist/main.py, transforms.Normalize((0.1307,),
  // (0.3081,)).
  if (name == "mnist") return {{0.1307}, {0.3081}};
  // FashionMNIST training set (60000 images), computed here from Debian's
  // dataset-fashion-mnist train-images-idx3-ubyte.gz: mean 0.28604, population std 0.35302
  // over all pixels (checked by tests/data/registry_test.cpp when the package is installed).
  if (name == "fashion-mnist") return {{0.2860}, {0.3530}};
  // Maps [0, 1] to [-1, 1]; channel-agnostic (one value, see the overload below).
  if (name == "minus-one-one") return {{0.5}, {0.5}};
  // TFLite/Keras MobileNet input scaling (pixel - 128) / 128, in [0, 1] pixel units; see
  // ../shared/data/README.md. Channel-agnostic like "minus-one-one".
  if (name == "tf-128") return {{128.0 / 255.0}, {128.0 / 255.0}};
  if (name == "none") return {};
  throw Error("normalisation preset '" + name + "'", "unknown preset",
              "known presets: " + join(normalize_preset_names()));
}

NormalizePreset normalize_preset(const std::string& name, int64_t channels) {
  NormalizePreset preset = normalize_preset(name);
  if (name == "minus-one-one" || name == "tf-128") {
    preset.mean.assign(static_cast<size_t>(channels), preset.mean.front());
    preset.stddev.assign(static_cast<size_t>(channels), preset.stddev.front());
  }
  require(preset.mean.empty() || static_cast<int64_t>(preset.mean.size()) == channels,
          "normalisation preset '" + name + "'",
          "made for " + std::to_string(preset.mean.size()) + "-channel images, not " +
              std::to_string(channels) + "-channel ones",
          "pick a preset made for this dataset, \"minus-one-one\" or \"none\"");
  return preset;
}

std::vector<std::string> normalize_preset_names() {
  return {"cifar", "imagenet", "mnist", "fashion-mnist", "minus-one-one", "tf-128", "none"};
}

}  // namespace normlab::data
