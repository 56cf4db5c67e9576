#include "nn/frn.h"

namespace normlab::nn {
namespace {

// Initial value of the learned epsilon eps_l. Section 3.2 of Singh & Krishnan (2020) only
// asks that eps = eps0 + |eps_l| stay above eps0; starting eps_l at 1e-4 keeps the layer far
// from the sign(x) regime on 1x1 inputs (|x| of order 1e-2 is still resolved) while barely
// changing x_hat for activations of order 1. A project choice, recorded here.
constexpr double kLearnedEpsInit = 1e-4;

}  // namespace

FrnImpl::FrnImpl(const FrnOptions& opts) : options(opts) { reset(); }

void FrnImpl::reset() {
  TORCH_CHECK(options.channels() > 0, "Frn: channels must be positive, got ", options.channels());
  const int64_t c = options.channels();
  // gamma = 1, beta = 0, tau = 0: at initialisation y = max(x_hat, 0), i.e. FRN + ReLU.
  weight = register_parameter("weight", torch::ones({c}));
  bias = register_parameter("bias", torch::zeros({c}));
  tau = register_parameter("tau", torch::zeros({c}));
  if (options.learned_eps()) {
    eps_l = register_parameter("eps_l", torch::full({1}, kLearnedEpsInit));
  } else {
    eps_l = torch::Tensor();
  }
}

torch::Tensor FrnImpl::forward(const torch::Tensor& x) {
  // x: (N, C, H, W) or (N, C)
  TORCH_CHECK(x.dim() == 2 || x.dim() == 4, "Frn expects (N, C) or (N, C, H, W), got ", x.sizes());
  TORCH_CHECK(x.size(1) == options.channels(), "Frn has ", options.channels(),
              " channels, input has ", x.size(1));
  TORCH_CHECK(!options.mean_over_features() || x.dim() == 2,
              "Frn mean_over_features is for (N, C) inputs, got ", x.sizes());

  std::vector<int64_t> param_shape{1, options.channels()};  // broadcast (C) over the batch
  torch::Tensor nu2;
  if (x.dim() == 4) {
    param_shape = {1, options.channels(), 1, 1};
    nu2 = x.pow(2).mean({2, 3}, /*keepdim=*/true);  // (N, C, 1, 1)
  } else if (options.mean_over_features()) {
    nu2 = x.pow(2).mean({1}, /*keepdim=*/true);  // (N, 1): the feature-axis variant
  } else {
    nu2 = x.pow(2);  // (N, C): each feature is a 1x1 map, so nu^2 = x^2
  }

  // eps = eps0 + |eps_l| (section 3.2); eps_l is a (1) tensor, broadcasting over everything.
  torch::Tensor x_hat = options.learned_eps() ? x * torch::rsqrt(nu2 + options.eps() + eps_l.abs())
                                              : x * torch::rsqrt(nu2 + options.eps());

  // TLU: y = max(gamma * x_hat + beta, tau)
  torch::Tensor y = weight.view(param_shape) * x_hat + bias.view(param_shape);
  return torch::maximum(y, tau.view(param_shape));  // same shape as x
}

void FrnImpl::pretty_print(std::ostream& stream) const {
  stream << "normlab::nn::Frn(" << options.channels() << ", eps=" << options.eps()
         << ", learned_eps=" << (options.learned_eps() ? "true" : "false")
         << ", mean_over_features=" << (options.mean_over_features() ? "true" : "false") << ")";
}

}  // namespace normlab::nn
