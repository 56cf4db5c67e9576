#include "nn/global_avg_pool.h"

namespace normlab::nn {
namespace {

struct GlobalAvgPool : public torch::autograd::Function<GlobalAvgPool> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    ctx->saved_data["sizes"] = x.sizes();
    return x.mean({2, 3});  // (N, C)
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const std::vector<int64_t> sizes = ctx->saved_data["sizes"].toIntVector();
    const torch::Tensor& g = grads[0];  // (N, C)
    // The same quotient mean's backward computes per element, taken once per (n, c).
    const torch::Tensor each = g / (sizes[2] * sizes[3]);
    return {each.view({sizes[0], sizes[1], 1, 1}).expand(sizes)};  // (N, C, H, W), stride 0
  }
};

}  // namespace

torch::Tensor global_avg_pool(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4, "global_avg_pool expects (N, C, H, W) input, got ", x.sizes());
  return GlobalAvgPool::apply(x);
}

}  // namespace normlab::nn
