// mobilenet_v2 in torchvision's exact layout (torchvision/models/mobilenetv2.py, Sandler et
// al. 2018, table 2), so that named_parameters()/named_buffers() equal torchvision's
// state_dict keys:
//   features.0            Conv3x3 s2 (3 -> 32*w) + Norm + ReLU6      ("features.0.0.weight")
//   features.1 .. 17      inverted residual blocks                   ("features.i.conv.j...")
//   features.18           Conv1x1 (-> 1280*max(1, w)) + Norm + ReLU6
// Optionally the stride-2 3x3 convs pad like TensorFlow 'SAME' (weights converted from
// TF/Keras, /work/shared/data/README.md).
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/backbone.h"

namespace normlab::models {
namespace {

// One stage of the architecture table: expansion t, output channels c, repeats n, stride s of
// the first block (Sandler et al. 2018, table 2; torchvision's inverted_residual_setting).
struct Stage {
  int64_t t;
  int64_t c;
  int64_t n;
  int64_t s;
};
constexpr Stage kStages[] = {
    {1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2},  {6, 64, 4, 2},
    {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1},
};
constexpr int64_t kStemChannels = 32;    // torchvision input_channel
constexpr int64_t kLastChannels = 1280;  // torchvision last_channel
constexpr int64_t kRoundNearest = 8;     // torchvision round_nearest

// torchvision's _make_divisible: round to the nearest multiple of `divisor`, at least
// `divisor`, and never more than 10% below v.
int64_t make_divisible(double v, int64_t divisor) {
  int64_t rounded =
      static_cast<int64_t>(v + static_cast<double>(divisor) / 2.0) / divisor * divisor;
  rounded = std::max(divisor, rounded);
  if (static_cast<double>(rounded) < 0.9 * v) rounded += divisor;
  return rounded;
}

// TF 'SAME' padding along one axis: total = max((ceil(n/s) - 1) * s + k - n, 0), the odd
// pixel going after (right/bottom). For even n, k = 3, s = 2 that is (0, 1).
std::pair<int64_t, int64_t> same_padding(int64_t n, int64_t k, int64_t s) {
  const int64_t out = (n + s - 1) / s;
  const int64_t total = std::max<int64_t>((out - 1) * s + k - n, 0);
  return {total / 2, total - total / 2};
}

// A Conv2d (same parameters and type, so keys and dynamic_casts are unchanged) that pads its
// input like TensorFlow 'SAME' and then convolves with padding 0.
class TfSameConv2dImpl : public torch::nn::Conv2dImpl {
 public:
  explicit TfSameConv2dImpl(torch::nn::Conv2dOptions options)
      : torch::nn::Conv2dImpl(options.padding(0)), conv_options_(options) {}

  torch::Tensor forward(const torch::Tensor& x) {
    // x: (N, C, H, W) -> zero-padded (N, C, H + top + bottom, W + left + right) -> conv
    const auto [top, bottom] =
        same_padding(x.size(2), options.kernel_size()->at(0), options.stride()->at(0));
    const auto [left, right] =
        same_padding(x.size(3), options.kernel_size()->at(1), options.stride()->at(1));
    namespace F = torch::nn::functional;
    return torch::nn::Conv2dImpl::forward(
        F::pad(x, F::PadFuncOptions(std::vector<int64_t>{left, right, top, bottom})));
  }

  // Cloneable<Conv2dImpl>::clone would return a plain Conv2d and lose the padding.
  std::shared_ptr<torch::nn::Module> clone(
      const torch::optional<torch::Device>& device = torch::nullopt) const override {
    torch::NoGradGuard no_grad;
    auto copy = std::make_shared<TfSameConv2dImpl>(conv_options_);
    copy->weight.copy_(weight);
    if (bias.defined()) copy->bias.copy_(bias);
    if (device) copy->to(*device);
    return copy;
  }

 private:
  torch::nn::Conv2dOptions conv_options_;  // as constructed (Conv2dImpl keeps ConvNdOptions)
};
TORCH_MODULE(TfSameConv2d);

// torchvision's init for convolutions: kaiming_normal_(mode="fan_out"), zero bias.
template <typename Conv>
Conv init_conv(Conv conv) {
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
  if (conv->bias.defined()) torch::nn::init::zeros_(conv->bias);
  return conv;
}

struct Builder {
  const ModelOptions& options;
  NormFactory& norms;

  // torchvision Conv2dNormActivation: path.0 conv (no bias), path.1 norm, path.2 ReLU6.
  Block conv_norm_act(const std::string& path, int64_t in, int64_t out, int64_t kernel,
                      int64_t stride, int64_t groups) const {
    auto conv_options = torch::nn::Conv2dOptions(in, out, kernel)
                            .stride(stride)
                            .padding((kernel - 1) / 2)
                            .groups(groups)
                            .bias(false);
    torch::nn::AnyModule conv;
    if (options.tf_same_padding && stride == 2) {
      conv = torch::nn::AnyModule(init_conv(TfSameConv2d(conv_options)));
    } else {
      conv = torch::nn::AnyModule(init_conv(torch::nn::Conv2d(conv_options)));
    }
    Block block;
    block->push_back(conv);                                                             // .0
    block->push_back(norms.make(path + ".1", options.norm, out, nn::NormInput::kMap));  // .1
    block->push_back(torch::nn::ReLU6());                                               // .2
    return block;
  }
};

}  // namespace

// torchvision InvertedResidual: x + conv(x) when stride 1 and in == out, else conv(x).
// conv = [expand Conv1x1+Norm+ReLU6 if t != 1] -> depthwise Conv3x3+Norm+ReLU6 ->
//        project Conv1x1 -> Norm (linear bottleneck).
class InvertedResidualImpl : public torch::nn::Module {
 public:
  InvertedResidualImpl(Block layers, bool residual)
      : conv(register_module("conv", std::move(layers))), residual_(residual) {}

  torch::Tensor forward(const torch::Tensor& x) {
    // x: (N, in, H, W) -> (N, out, H / stride, W / stride)
    return residual_ ? x + conv->forward(x) : conv->forward(x);
  }

  std::shared_ptr<torch::nn::Module> clone(
      const torch::optional<torch::Device>& device = torch::nullopt) const override {
    auto copy_conv = std::dynamic_pointer_cast<BlockImpl>(conv->clone(device));
    return std::make_shared<InvertedResidualImpl>(Block(copy_conv), residual_);
  }

  Block conv;

 private:
  bool residual_;
};
TORCH_MODULE(InvertedResidual);

Backbone build_mobilenet_v2(const ModelOptions& options, NormFactory& norms) {
  const Builder b{options, norms};
  const double w = options.width_mult;
  Backbone out;
  out.features = torch::nn::Sequential();
  int64_t in = make_divisible(kStemChannels * w, kRoundNearest);
  const int64_t last = make_divisible(kLastChannels * std::max(1.0, w), kRoundNearest);
  // features.0: (N, C, H, W) -> (N, in, H/2, W/2)
  out.features->push_back(b.conv_norm_act("features.0", options.in_channels, in, 3, 2, 1));
  for (const Stage& stage : kStages) {
    const int64_t c = make_divisible(stage.c * w, kRoundNearest);
    for (int64_t i = 0; i < stage.n; ++i) {
      const int64_t stride = i == 0 ? stage.s : 1;
      const std::string path = "features." + std::to_string(out.features->size()) + ".conv.";
      const int64_t hidden = std::llround(static_cast<double>(in * stage.t));
      Block conv;
      if (stage.t != 1) conv->push_back(b.conv_norm_act(path + "0", in, hidden, 1, 1, 1));
      const std::string dw = path + std::to_string(conv->size());
      conv->push_back(b.conv_norm_act(dw, hidden, hidden, 3, stride, hidden));  // depthwise
      conv->push_back(init_conv(
          torch::nn::Conv2d(torch::nn::Conv2dOptions(hidden, c, 1).bias(false))));  // project
      conv->push_back(
          norms.make(path + std::to_string(conv->size()), options.norm, c, nn::NormInput::kMap));
      out.features->push_back(InvertedResidual(conv, stride == 1 && in == c));
      in = c;
    }
  }
  // features.18: (N, in, H', W') -> (N, last, H', W')
  out.features->push_back(
      b.conv_norm_act("features." + std::to_string(out.features->size()), in, last, 1, 1, 1));
  out.pool = true;
  out.feature_dim = last;
  out.torchvision_head = "classifier";
  return out;
}

}  // namespace normlab::models
