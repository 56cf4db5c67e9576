#include "models/prefix.h"

#include <algorithm>

#include "core/path_pattern.h"
#include "nn/norm.h"

namespace normlab::models {

int64_t cut_point(ClassifierImpl& model, const std::vector<std::string>& trainable) {
  if (trainable.empty()) return 0;
  int64_t cut = model.num_stages();
  for (const auto& p : model.named_parameters()) {
    for (const auto& pattern : trainable) {
      if (path_matches(pattern, p.key())) {
        cut = std::min(cut, model.stage_of(p.key()));
        break;
      }
    }
  }
  return cut;
}

torch::Tensor run_prefix(ClassifierImpl& model, const torch::Tensor& x, int64_t cut) {
  if (model.is_training() || x.size(0) <= kPrefixChunk) return model.forward_prefix(x, cut);
  std::vector<torch::Tensor> parts;
  for (const auto& chunk : x.split(kPrefixChunk)) parts.push_back(model.forward_prefix(chunk, cut));
  return torch::cat(parts);
}

void copy_prefix(ClassifierImpl& from, ClassifierImpl& to, int64_t cut, bool buffers_only) {
  torch::NoGradGuard no_grad;
  auto copy = [&](const torch::OrderedDict<std::string, torch::Tensor>& src,
                  torch::OrderedDict<std::string, torch::Tensor> dst) {
    for (const auto& item : src) {
      if (from.stage_of(item.key()) >= cut) continue;
      dst[item.key()].copy_(item.value());
    }
  };
  if (!buffers_only) copy(from.named_parameters(), to.named_parameters());
  copy(from.named_buffers(), to.named_buffers());
}

bool prefix_has_batch_norm(ClassifierImpl& model, int64_t cut) {
  for (const auto& item : model.named_modules()) {
    if (nn::is_batch_norm(*item.value()) && model.stage_of(item.key()) < cut) return true;
  }
  return false;
}

void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
  }
}

torch::Tensor channels_last(const torch::Tensor& x) {
  return x.dim() == 4 ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x;
}

}  // namespace normlab::models
