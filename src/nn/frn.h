// Filter Response Normalization with Thresholded Linear Unit (Singh & Krishnan, "Filter
// Response Normalization Layer", CVPR 2020):
//   nu^2 = mean_{H,W}(x^2);  x_hat = x / sqrt(nu^2 + eps);  y = max(gamma * x_hat + beta, tau)
// with eps = eps0 + |eps_l| when learned_eps (section 3.2, for 1x1 spatial extent).
#pragma once

#include <torch/torch.h>

namespace normlab::nn {

struct FrnOptions {
  FrnOptions(int64_t channels) : channels_(channels) {}  // NOLINT: implicit like torch options
  TORCH_ARG(int64_t, channels);
  TORCH_ARG(double, eps) = 1e-6;
  TORCH_ARG(bool, learned_eps) = false;
  // For (N, C) inputs: average x^2 over the feature axis (the common variant) instead of
  // treating each feature as a 1x1 map.
  TORCH_ARG(bool, mean_over_features) = false;
};

class FrnImpl : public torch::nn::Cloneable<FrnImpl> {
 public:
  explicit FrnImpl(const FrnOptions& options);
  void reset() override;
  // x: (N, C) or (N, C, H, W) -> same shape
  torch::Tensor forward(const torch::Tensor& x);
  void pretty_print(std::ostream& stream) const override;

  FrnOptions options;
  torch::Tensor weight;  // gamma (C)
  torch::Tensor bias;    // beta (C)
  torch::Tensor tau;     // TLU threshold (C)
  torch::Tensor eps_l;   // learned epsilon (1), only when options.learned_eps
};
TORCH_MODULE(Frn);

}  // namespace normlab::nn
