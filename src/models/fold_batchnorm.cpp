#include "models/fold_batchnorm.h"

#include <cstddef>
#include <iterator>
#include <memory>
#include <string>

#include "models/prefix.h"

namespace normlab::models {
namespace {

// Folds `bn` (eval mode) into `conv`, in float64 and back to the weights' dtype.
void fold(torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl& bn) {
  torch::NoGradGuard no_grad;
  const auto dtype = conv.weight.scalar_type();
  const torch::Tensor var = bn.running_var.to(torch::kFloat64);
  const torch::Tensor mean = bn.running_mean.to(torch::kFloat64);
  torch::Tensor scale = (var + bn.options.eps()).rsqrt();  // (C_out)
  torch::Tensor shift = -mean * scale;
  if (bn.options.affine()) {
    scale = scale * bn.weight.to(torch::kFloat64);
    shift = shift * bn.weight.to(torch::kFloat64) + bn.bias.to(torch::kFloat64);
  }
  const torch::Tensor old_bias =
      conv.bias.defined() ? conv.bias.to(torch::kFloat64) : torch::zeros_like(scale);
  conv.weight.copy_((conv.weight.to(torch::kFloat64) * scale.view({-1, 1, 1, 1})).to(dtype));
  // Conv2dImpl's forward reads its `bias` member; a conv built without one gets a plain
  // tensor there (not a registered parameter: the copy is never trained or saved).
  conv.bias = (old_bias * scale + shift).to(dtype);
}

}  // namespace

Classifier folded_prefix(ClassifierImpl& model, int64_t cut, bool channels_last, int64_t* folded) {
  Classifier copy = build_model(model.options());
  copy->to(model.parameters().front().device());
  copy_prefix(model, *copy, cut, false);
  copy->eval();
  int64_t count = 0;
  for (const auto& item : copy->named_modules()) {
    auto* seq = dynamic_cast<torch::nn::SequentialImpl*>(item.value().get());
    if (seq == nullptr) continue;
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    for (size_t i = 0; i + 1 < seq->size(); ++i) {
      auto conv = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(seq->ptr(i));
      auto bn = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(seq->ptr(i + 1));
      if (!conv || !bn || !bn->options.track_running_stats()) continue;
      if (copy->stage_of(prefix + std::to_string(i) + ".weight") >= cut) continue;
      fold(*conv, *bn);
      *std::next(seq->begin(), static_cast<std::ptrdiff_t>(i + 1)) =
          torch::nn::AnyModule(torch::nn::Identity());
      ++count;
    }
  }
  if (channels_last) to_channels_last(*copy);
  if (folded != nullptr) *folded = count;
  return copy;
}

}  // namespace normlab::models
