#include "nn/dmbn.h"

#include <limits>
#include <utility>

namespace normlab::nn {

void describe(DmbnOptions& o, OptionFields& f) {
  f.field("candidates", o.candidates,
          {std::numeric_limits<double>::min(), 1.0, "in (0, 1] (PyTorch's momentum)"});
  f.field("shadows", o.shadows, {"restart", "continue"});
  f.field("order", o.order, {"joint", "sequential"});
  f.field("split", o.split, {"val", "train_eval", "test"});
}

DmbnImpl::DmbnImpl(DmbnLayerOptions o) : options(std::move(o)) {
  TORCH_CHECK(!options.candidates.empty(), "Dmbn: no candidate momentum");
  reset();
}

void DmbnImpl::reset() {
  const int64_t c = options.channels;
  const auto k = static_cast<int64_t>(options.candidates.size());
  weight = register_parameter("weight", torch::ones({c}));
  bias = register_parameter("bias", torch::zeros({c}));
  // PyTorch's BatchNorm initial estimates: mean 0, variance 1.
  running_mean = register_buffer("running_mean", torch::zeros({c}));
  running_var = register_buffer("running_var", torch::ones({c}));
  shadow_mean = register_buffer("shadow_mean", torch::zeros({k, c}));
  shadow_var = register_buffer("shadow_var", torch::ones({k, c}));
  beta = register_buffer("beta", torch::zeros({}));
  betas = register_buffer("betas", torch::tensor(options.candidates, torch::kFloat));
}

torch::Tensor DmbnImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == (options.map ? 4 : 2), "Dmbn expects ",
              options.map ? "(N, C, H, W)" : "(N, C)", ", got ", x.sizes());
  if (!is_training()) {
    return torch::batch_norm(x, weight, bias, running_mean, running_var, false, 0.0, options.eps,
                             true);
  }
  {
    torch::NoGradGuard no_grad;
    const std::vector<int64_t> dims =
        options.map ? std::vector<int64_t>{0, 2, 3} : std::vector<int64_t>{0};
    // Unbiased batch variance, as PyTorch's BatchNorm feeds its running_var.
    auto [var, mean] = torch::var_mean(x.detach(), dims, /*unbiased=*/true);
    const torch::Tensor b = betas.to(shadow_mean.dtype()).unsqueeze(1);  // (K, 1)
    shadow_mean.mul_(1 - b).add_(b * mean.to(shadow_mean.dtype()).unsqueeze(0));
    shadow_var.mul_(1 - b).add_(b * var.to(shadow_var.dtype()).unsqueeze(0));
  }
  return torch::batch_norm(x, weight, bias, {}, {}, true, 0.0, options.eps, true);
}

torch::Tensor DmbnImpl::candidate_esm(const torch::Tensor& population_mean) const {
  // population_mean: (C), any float dtype -> (K)
  return (shadow_mean.to(torch::kDouble) - population_mean.to(torch::kDouble).unsqueeze(0))
      .norm(2, {1});
}

void DmbnImpl::adopt(const torch::Tensor& k, bool restart) {
  torch::NoGradGuard no_grad;
  const torch::Tensor idx = k.reshape({1}).to(torch::kLong);
  running_mean.copy_(shadow_mean.index_select(0, idx).squeeze(0));
  running_var.copy_(shadow_var.index_select(0, idx).squeeze(0));
  beta.copy_(betas.index_select(0, idx).squeeze(0));
  if (restart) {
    shadow_mean.copy_(running_mean.unsqueeze(0).expand_as(shadow_mean));
    shadow_var.copy_(running_var.unsqueeze(0).expand_as(shadow_var));
  }
}

void DmbnImpl::pretty_print(std::ostream& stream) const {
  stream << "normlab::nn::Dmbn(" << options.channels << ", candidates=" << options.candidates.size()
         << ", eps=" << options.eps << ")";
}

}  // namespace normlab::nn
