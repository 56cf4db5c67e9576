#include "train/clip.h"

namespace normlab::train {

void describe(ClipOptions& o, OptionFields& f) {
  f.field("clip_norm", o.max_norm, Range{0, 1e12, ">= 0 (0 = off)"});
  f.field("clip_value", o.max_value, Range{0, 1e12, ">= 0 (0 = off)"});
}

torch::Tensor clip_gradients(const std::vector<torch::Tensor>& params, const ClipOptions& options) {
  std::vector<torch::Tensor> grads;
  grads.reserve(params.size());
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return torch::zeros({});
  std::vector<torch::Tensor> norms;
  norms.reserve(grads.size());
  for (const auto& g : grads) norms.push_back(g.detach().norm(2).to(torch::kFloat));
  torch::Tensor total = torch::stack(norms).norm(2);  // () : global L2 norm before clipping
  if (options.max_norm > 0) {
    // 1e-6 as in torch.nn.utils.clip_grad_norm_, so results match PyTorch scripts.
    torch::Tensor coef = (options.max_norm / (total + 1e-6)).clamp_max(1.0);
    for (auto& g : grads) g.mul_(coef.to(g.dtype()));
  }
  if (options.max_value > 0) {
    for (auto& g : grads) g.clamp_(-options.max_value, options.max_value);
  }
  return total;
}

}  // namespace normlab::train
