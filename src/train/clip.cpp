#include "train/clip.h"

namespace normlab::train {

void describe(ClipOptions& o, OptionFields& f) {
  f.field("clip_norm", o.max_norm, Range{0, 1e12, ">= 0 (0 = off)"});
  f.field("clip_value", o.max_value, Range{0, 1e12, ">= 0 (0 = off)"});
}

namespace {

// The L2 norm as torch.nn.utils.clip_grad_norm_ computes it (torch.norm(x, 2) = at::norm over
// every dimension listed): Tensor::norm(2) reduces in another order, and one differing bit of
// the clipping coefficient is enough for Adam to send near-zero gradients (e.g. of a bias in
// front of a train-mode BatchNorm) elsewhere within a few steps.
torch::Tensor l2_norm(const torch::Tensor& x) {
  std::vector<int64_t> dims(static_cast<size_t>(x.dim()));
  for (int64_t d = 0; d < x.dim(); ++d) dims[static_cast<size_t>(d)] = d;
  return torch::norm(x, 2.0, dims, false);
}

}  // namespace

torch::Tensor clip_gradients(const std::vector<torch::Tensor>& params, const ClipOptions& options) {
  std::vector<torch::Tensor> grads;
  grads.reserve(params.size());
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return torch::zeros({});
  std::vector<torch::Tensor> norms;
  norms.reserve(grads.size());
  for (const auto& g : grads) norms.push_back(l2_norm(g.detach()).to(torch::kFloat));
  torch::Tensor total = l2_norm(torch::stack(norms));  // () : global L2 norm before clipping
  if (options.max_norm > 0) {
    // As torch.nn.utils.clip_grad_norm_: max_norm / (total + 1e-6), which Python evaluates as
    // reciprocal() * max_norm (Tensor.__rtruediv__); ATen's scalar / tensor divides, and may
    // differ in the last bit.
    torch::Tensor coef = ((total + 1e-6).reciprocal() * options.max_norm).clamp_max(1.0);
    for (auto& g : grads) g.mul_(coef.to(g.dtype()));
  }
  if (options.max_value > 0) {
    for (auto& g : grads) g.clamp_(-options.max_value, options.max_value);
  }
  return total;
}

}  // namespace normlab::train
