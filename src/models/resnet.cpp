// ResNet-18/50 in torchvision's exact layout (torchvision/models/resnet.py, He et al. 2016),
// so that named_parameters()/named_buffers() equal torchvision's state_dict keys:
//   conv1, bn1                 stem: Conv7x7 s2 + Norm + ReLU, then MaxPool3x3 s2
//   layer1 .. layer4           blocks "layerL.B.conv1/bn1/...", "layerL.B.downsample.0/1"
// The _cifar variants use a Conv3x3 s1 stem without max-pool (the usual CIFAR adaptation,
// e.g. kuangliu/pytorch-cifar); the keys are the same.
#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "models/backbone.h"

namespace normlab::models {
namespace {

// Block kinds of torchvision: BasicBlock (two 3x3 convs, expansion 1) and Bottleneck
// (1x1, 3x3, 1x1, expansion 4, stride on the 3x3 as in torchvision "ResNet V1.5").
enum class BlockKind { kBasic, kBottleneck };

struct ResNetSpec {
  BlockKind block;
  std::array<int64_t, 4> blocks;  // blocks per layer
  bool cifar_stem;
};

int64_t expansion(BlockKind kind) { return kind == BlockKind::kBasic ? 1 : 4; }

// torchvision's init for convolutions: kaiming_normal_(mode="fan_out", relu).
torch::nn::Conv2d make_conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  torch::nn::Conv2d conv(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
  return conv;
}

// A BasicBlock or Bottleneck: conv1, bn1, conv2, bn2[, conv3, bn3][, downsample], registered
// in torchvision's order. forward: relu(norm_k(conv_k(.))) for all but the last pair, then
// relu(last + identity), identity = downsample(x) when the shape changes.
class ResNetBlockImpl : public torch::nn::Module, public NormSlotOwner {
 public:
  ResNetBlockImpl(BlockKind kind, int64_t in, int64_t planes, int64_t stride,
                  const std::string& path, const ModelOptions& options, NormFactory& norms) {
    const int64_t out = planes * expansion(kind);
    std::vector<std::array<int64_t, 4>> convs;  // (in, out, kernel, stride)
    if (kind == BlockKind::kBasic) {
      convs = {{in, planes, 3, stride}, {planes, planes, 3, 1}};
    } else {
      convs = {{in, planes, 1, 1}, {planes, planes, 3, stride}, {planes, out, 1, 1}};
    }
    for (size_t i = 0; i < convs.size(); ++i) {
      const auto [c_in, c_out, kernel, s] = convs[i];
      const std::string k = std::to_string(i + 1);
      convs_.push_back(register_module("conv" + k, make_conv(c_in, c_out, kernel, s)));
      norms_.push_back(norms.make(path + ".bn" + k, options.norm, c_out, nn::NormInput::kMap));
      register_module("bn" + k, norms_.back().ptr());
    }
    if (stride != 1 || in != out) {
      downsample_ = register_module(
          "downsample",
          Block(make_conv(in, out, 1, stride),
                norms.make(path + ".downsample.1", options.norm, out, nn::NormInput::kMap)));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    // x: (N, in, H, W) -> (N, planes * expansion, H / stride, W / stride)
    torch::Tensor y = x;
    for (size_t i = 0; i < convs_.size(); ++i) {
      y = norms_[i].forward(convs_[i]->forward(y));
      if (i + 1 < convs_.size()) y = torch::relu(y);
    }
    return torch::relu(y + (downsample_ ? downsample_->forward(x) : x));
  }

  std::vector<torch::nn::AnyModule*> norm_slots() override {
    std::vector<torch::nn::AnyModule*> slots;
    for (auto& norm : norms_) slots.push_back(&norm);
    return slots;
  }

 private:
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::AnyModule> norms_;
  Block downsample_{nullptr};
};
TORCH_MODULE(ResNetBlock);

// Stem, then layer1..4: (N, C, H, W) -> (N, 512 * expansion, H / 32, W / 32)
// (H / 8 for the CIFAR stem).
class ResNetTrunk : public Trunk {
 public:
  ResNetTrunk(torch::nn::Conv2d conv1, torch::nn::AnyModule bn1, bool max_pool,
              std::array<torch::nn::Sequential, 4> layers)
      : conv1_(std::move(conv1)), bn1_(std::move(bn1)), max_pool_(max_pool), layers_(layers) {}

  torch::Tensor forward(const torch::Tensor& x) override {
    return forward_stages(x, 0, 1 + static_cast<int64_t>(layers_.size()));
  }

  // Stage 0 is the stem (conv1, bn1, relu, max-pool), stages 1..4 are layer1..layer4.
  torch::Tensor forward_stages(const torch::Tensor& x, int64_t begin, int64_t end) override {
    torch::Tensor y = x;
    if (begin <= 0 && end > 0) {
      y = torch::relu(bn1_.forward(conv1_->forward(y)));
      if (max_pool_) y = torch::max_pool2d(y, {3, 3}, {2, 2}, {1, 1});
    }
    for (int64_t l = std::max<int64_t>(begin, 1); l < end; ++l) {
      y = layers_[static_cast<size_t>(l - 1)]->forward(y);
    }
    return y;
  }

  std::vector<std::vector<std::string>> stages() const override {
    return {{"conv1", "bn1"}, {"layer1"}, {"layer2"}, {"layer3"}, {"layer4"}};
  }

  std::vector<torch::nn::AnyModule*> norm_slots() override { return {&bn1_}; }

 private:
  torch::nn::Conv2d conv1_;
  torch::nn::AnyModule bn1_;
  bool max_pool_;
  std::array<torch::nn::Sequential, 4> layers_;
};

Backbone build_resnet(const ResNetSpec& spec, const ModelOptions& options, NormFactory& norms) {
  // torchvision's ResNet.inplanes and planes, times model.width_mult (1 = torchvision's; S2's
  // offline analogue sizes a ResNet-18 for 28 px FashionMNIST with 0.25).
  auto scaled = [&](int64_t c) {
    return std::max<int64_t>(1, static_cast<int64_t>(std::llround(c * options.width_mult)));
  };
  const int64_t kStemChannels = scaled(64);
  const std::array<int64_t, 4> kPlanes = {scaled(64), scaled(128), scaled(256), scaled(512)};
  Backbone out;
  auto conv1 = spec.cifar_stem ? make_conv(options.in_channels, kStemChannels, 3, 1)
                               : make_conv(options.in_channels, kStemChannels, 7, 2);
  auto bn1 = norms.make("bn1", options.norm, kStemChannels, nn::NormInput::kMap);
  out.modules.emplace_back("conv1", conv1.ptr());
  out.modules.emplace_back("bn1", bn1.ptr());
  std::array<torch::nn::Sequential, 4> layers;
  int64_t in = kStemChannels;
  for (size_t l = 0; l < layers.size(); ++l) {
    const std::string name = "layer" + std::to_string(l + 1);
    layers[l] = torch::nn::Sequential();
    for (int64_t b = 0; b < spec.blocks[l]; ++b) {
      const int64_t stride = (l > 0 && b == 0) ? 2 : 1;
      layers[l]->push_back(ResNetBlock(spec.block, in, kPlanes[l], stride,
                                       name + "." + std::to_string(b), options, norms));
      in = kPlanes[l] * expansion(spec.block);
    }
    out.modules.emplace_back(name, layers[l].ptr());
  }
  out.trunk = std::make_shared<ResNetTrunk>(conv1, bn1, !spec.cifar_stem, layers);
  out.pool = true;
  out.feature_dim = in;
  out.torchvision_head = "fc";
  return out;
}

}  // namespace

Backbone build_resnet18(const ModelOptions& options, NormFactory& norms) {
  return build_resnet({BlockKind::kBasic, {2, 2, 2, 2}, false}, options, norms);
}
Backbone build_resnet50(const ModelOptions& options, NormFactory& norms) {
  return build_resnet({BlockKind::kBottleneck, {3, 4, 6, 3}, false}, options, norms);
}
Backbone build_resnet18_cifar(const ModelOptions& options, NormFactory& norms) {
  return build_resnet({BlockKind::kBasic, {2, 2, 2, 2}, true}, options, norms);
}
Backbone build_resnet50_cifar(const ModelOptions& options, NormFactory& norms) {
  return build_resnet({BlockKind::kBottleneck, {3, 4, 6, 3}, true}, options, norms);
}

}  // namespace normlab::models
