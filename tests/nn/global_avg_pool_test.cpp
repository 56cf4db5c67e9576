// global_avg_pool against x.mean({2, 3}): the same values forward and backward, bit for bit,
// with a gradient that reaches the layer below as a broadcast (stride 0) instead of a
// materialised NCHW tensor, so that a channels-last network's backward stays channels-last.
#include "nn/global_avg_pool.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

namespace normlab::nn {
namespace {

torch::Tensor random_maps(bool channels_last) {
  torch::manual_seed(7);
  torch::Tensor x = torch::randn({5, 12, 7, 6}) * 4;  // H != W: a swapped axis would show
  return channels_last ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x;
}

TEST(GlobalAvgPool, ForwardAndGradientAreTheMeansBitForBit) {
  for (bool channels_last : {false, true}) {
    SCOPED_TRACE(channels_last ? "channels-last" : "NCHW");
    const torch::Tensor w = torch::randn({5, 12});
    torch::Tensor a = random_maps(channels_last).requires_grad_();
    torch::Tensor b = random_maps(channels_last).requires_grad_();
    const torch::Tensor pa = global_avg_pool(a), pb = b.mean({2, 3});
    EXPECT_TRUE(torch::equal(pa, pb));
    (pa * w).sum().backward();
    (pb * w).sum().backward();
    EXPECT_TRUE(torch::equal(a.grad(), b.grad()));
  }
}

// What makes a channels-last tail fast: the gradient handed down is (N, C, 1, 1) broadcast over
// (H, W), so ReLU6's backward below writes its result in the layout of its own input.
TEST(GlobalAvgPool, HandsTheLayerBelowABroadcastGradient) {
  torch::Tensor x = random_maps(true).requires_grad_();
  torch::Tensor below = x * 1;  // a non-leaf in channels-last, like a BatchNorm's output
  torch::Tensor seen, under;
  below.register_hook([&](torch::Tensor g) { under = g; });
  torch::Tensor act = torch::hardtanh(below, 0, 6);
  act.register_hook([&](torch::Tensor g) { seen = g; });
  global_avg_pool(act).sum().backward();
  ASSERT_TRUE(seen.defined() && under.defined());
  EXPECT_EQ(seen.stride(2), 0);
  EXPECT_EQ(seen.stride(3), 0);
  EXPECT_TRUE(under.is_contiguous(torch::MemoryFormat::ChannelsLast)) << under.strides();
}

// The smoothness probe differentiates gradients (create_graph): the pooled backward must be
// differentiable like mean's.
TEST(GlobalAvgPool, SecondOrderGradientsMatchTheMeans) {
  const torch::Tensor x = random_maps(false);
  torch::Tensor grads[2];
  for (int k = 0; k < 2; ++k) {
    torch::manual_seed(3);
    torch::Tensor w = torch::randn({5, 12}).requires_grad_();
    torch::Tensor xk = x.clone().requires_grad_();
    torch::Tensor y = ((k == 0 ? global_avg_pool(xk) : xk.mean({2, 3})) * w).pow(2).sum();
    auto gx = torch::autograd::grad({y}, {xk}, {}, true, true)[0];
    (gx * x).sum().backward();
    grads[k] = w.grad();
  }
  ASSERT_TRUE(grads[0].defined() && grads[1].defined());
  EXPECT_TRUE(torch::allclose(grads[0], grads[1], 1e-6, 1e-6));
}

TEST(GlobalAvgPool, RejectsAnythingButMaps) {
  try {
    global_avg_pool(torch::zeros({4, 8}));
    FAIL() << "a (N, C) input was pooled";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("(N, C, H, W)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace normlab::nn
