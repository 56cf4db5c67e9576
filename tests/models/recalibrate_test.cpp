// BatchNorm recalibration: running stats become the measured statistics of each BN's input
// under the ORIGINAL eval-mode network, while eval outputs stay unchanged.
#include "models/recalibrate.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/model.h"
#include "nn/norm.h"

namespace normlab::models {
namespace {

// Random running stats and affine parameters, so the eval network is not the identity on BN.
void randomize_batch_norms(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (const auto& m : model.modules()) {
    if (auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(m.get())) {
      const int64_t c = bn->options.num_features();
      bn->running_mean.copy_(0.3 * torch::randn({c}));
      bn->running_var.copy_(0.5 + torch::rand({c}));
      bn->weight.copy_(1.0 + 0.2 * torch::randn({c}));
      bn->bias.copy_(0.2 * torch::randn({c}));
    }
  }
}

int64_t count_batch_norms(torch::nn::Module& model) {
  int64_t n = 0;
  for (const auto& m : model.modules()) n += nn::is_batch_norm(*m) ? 1 : 0;
  return n;
}

// Serves `batches` one by one through the next_batch interface.
std::function<bool(torch::Tensor&)> serve(const std::vector<torch::Tensor>& batches) {
  auto i = std::make_shared<size_t>(0);
  return [batches, i](torch::Tensor& out) {
    if (*i == batches.size()) return false;
    out = batches[(*i)++];
    return true;
  };
}

std::vector<torch::Tensor> shifted_batches(int64_t count, std::vector<int64_t> shape) {
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < count; ++i) out.push_back(2.0 * torch::randn(shape) + 0.5);
  return out;
}

double relative_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

// The BN's running stats equal the per-channel mean and unbiased variance of `input`.
void expect_stats_of(torch::nn::Module& bn_module, const torch::Tensor& input,
                     const std::string& what) {
  SCOPED_TRACE(what);
  auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(&bn_module);
  ASSERT_NE(bn, nullptr);
  const auto v = input.to(torch::kFloat64).transpose(0, 1).reshape({input.size(1), -1});
  const auto mean = v.mean(1);
  const auto var = v.var(1, /*unbiased=*/true);
  EXPECT_TRUE(torch::allclose(bn->running_mean.to(torch::kFloat64), mean, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(bn->running_var.to(torch::kFloat64), var, 1e-4, 1e-5));
  // The biased variance differs by n / (n - 1): the test tells them apart.
  EXPECT_FALSE(torch::allclose(bn->running_var.to(torch::kFloat64), v.var(1, /*unbiased=*/false),
                               1e-4, 1e-6));
}

TEST(Recalibrate, MobileNetKeepsEvalOutputsAndMeasuresUnderTheEvalNetwork) {
  torch::manual_seed(3);
  ModelOptions o;
  o.backbone = "mobilenet_v2";
  o.width_mult = 0.25;
  o.in_channels = 3;
  o.head.kind = "torchvision";
  Classifier model = build_model(o);
  randomize_batch_norms(*model);
  model->eval();
  const auto probe = torch::randn({2, 3, 16, 16});
  const auto before = model->forward(probe);

  const auto batches = shifted_batches(3, {2, 3, 16, 16});
  model->train();  // the mode is restored afterwards
  const RecalibrateReport report = recalibrate_batchnorm(*model, serve(batches));
  EXPECT_EQ(report.layers, count_batch_norms(*model));
  EXPECT_EQ(report.layers, 52);
  EXPECT_EQ(report.batches, 3);
  EXPECT_EQ(report.samples, 6);
  EXPECT_TRUE(model->is_training());
  EXPECT_TRUE(model->named_modules()["features.0.1"]->is_training());

  model->eval();
  torch::NoGradGuard no_grad;
  EXPECT_LT(relative_diff(model->forward(probe), before), 1e-5);

  // features.0.1 sees the stem conv's output; features.2.conv.3 sees block 2's projection
  // of eval-mode activations (a train-mode BN upstream would change it).
  const auto data = torch::cat(batches);
  auto* stem = model->features->ptr(0)->as<torch::nn::Sequential>();
  expect_stats_of(*model->named_modules()["features.0.1"], stem->begin()->forward(data),
                  "features.0.1");
  auto entry = model->features->begin();
  auto y = entry->forward(data);  // features.0
  y = (++entry)->forward(y);      // features.1 (with its residual connection)
  auto features = model->named_modules();
  auto* block2 = features["features.2.conv"]->as<torch::nn::Sequential>();
  ASSERT_NE(block2, nullptr);
  auto it = block2->begin();
  for (int i = 0; i < 3; ++i, ++it) y = it->forward(y);
  expect_stats_of(*features["features.2.conv.3"], y, "features.2.conv.3");
}

TEST(Recalibrate, ResNetSlotsStemAndDownsample) {
  torch::manual_seed(4);
  ModelOptions o;
  o.backbone = "resnet18_cifar";
  o.in_channels = 3;
  o.head.kind = "torchvision";
  Classifier model = build_model(o);
  randomize_batch_norms(*model);
  model->eval();
  const auto probe = torch::randn({2, 3, 8, 8});
  const auto before = model->forward(probe);
  const auto batches = shifted_batches(2, {3, 3, 8, 8});
  const RecalibrateReport report = recalibrate_batchnorm(*model, serve(batches));
  EXPECT_EQ(report.layers, count_batch_norms(*model));
  EXPECT_EQ(report.layers, 20);
  EXPECT_FALSE(model->is_training());

  torch::NoGradGuard no_grad;
  EXPECT_LT(relative_diff(model->forward(probe), before), 1e-5);
  auto m = model->named_modules();
  const auto data = torch::cat(batches);
  auto conv = [&](const std::string& path, const torch::Tensor& x) {
    return m[path]->as<torch::nn::Conv2d>()->forward(x);
  };
  auto bn = [&](const std::string& path, const torch::Tensor& x) {
    return m[path]->as<torch::nn::BatchNorm2d>()->forward(x);
  };
  const auto c1 = conv("conv1", data);
  expect_stats_of(*m["bn1"], c1, "bn1");
  const auto x1 = torch::relu(bn("bn1", c1));  // layer1's input (no max-pool)
  const auto in2 =
      conv("layer1.0.conv2", torch::relu(bn("layer1.0.bn1", conv("layer1.0.conv1", x1))));
  expect_stats_of(*m["layer1.0.bn2"], in2, "layer1.0.bn2");
  const auto x2 = m["layer1"]->as<torch::nn::Sequential>()->forward(x1);  // layer2's input
  expect_stats_of(*m["layer2.0.downsample.1"], conv("layer2.0.downsample.0", x2),
                  "layer2.0.downsample.1");
}

TEST(Recalibrate, FoldedBatchNormGetsTheReadmeRewrite) {
  // A TF-folded BN: weight 1, running_mean 0, running_var 1 - eps, folded bias b. Then
  // weight' = sqrt(v + eps) and bias' = b + m (/work/shared/data/README.md).
  torch::manual_seed(5);
  ModelOptions o;  // small_cnn, 1 channel, bn in the backbone and the mlp head (BatchNorm1d)
  o.input_hw = 12;
  o.width = 4;
  o.depth = 2;
  o.head.hidden = 6;
  Classifier model = build_model(o);
  const double eps = o.norm_options.eps;
  std::map<std::string, torch::Tensor> folded_bias;
  {
    torch::NoGradGuard no_grad;
    for (const auto& item : model->named_modules()) {
      auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(item.value().get());
      if (bn == nullptr) continue;
      bn->weight.fill_(1.0);
      bn->running_mean.zero_();
      bn->running_var.fill_(1.0 - eps);
      bn->bias.copy_(torch::randn_like(bn->bias));
      folded_bias[item.key()] = bn->bias.clone();
    }
  }
  ASSERT_EQ(folded_bias.size(), 2u);
  model->eval();
  const auto probe = torch::randn({2, 1, 12, 12});
  const auto before = model->forward(probe);
  const RecalibrateReport report =
      recalibrate_batchnorm(*model, serve(shifted_batches(2, {4, 1, 12, 12})));
  EXPECT_EQ(report.layers, 3);  // features.0.1, features.1.1 and the head's head.1
  for (const auto& [path, b] : folded_bias) {
    SCOPED_TRACE(path);
    auto* bn = model->named_modules()[path]->as<torch::nn::BatchNorm2d>();
    EXPECT_TRUE(torch::allclose(bn->weight, (bn->running_var + eps).sqrt(), 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(bn->bias, b + bn->running_mean, 1e-5, 1e-6));
    EXPECT_GT((bn->running_mean).abs().max().item<double>(), 1e-3);  // really measured
  }
  torch::NoGradGuard no_grad;
  EXPECT_LT(relative_diff(model->forward(probe), before), 1e-5);
}

TEST(Recalibrate, WithoutKeepingEvalOutputOnlyStatsChange) {
  torch::manual_seed(6);
  torch::nn::Sequential seq(torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 3, 3)),
                            torch::nn::BatchNorm2d(3));
  randomize_batch_norms(*seq);
  auto* bn = seq[1]->as<torch::nn::BatchNorm2d>();
  const auto weight = bn->weight.clone();
  const auto bias = bn->bias.clone();
  const auto data = shifted_batches(2, {2, 2, 6, 6});
  RecalibrateOptions keep_off;
  keep_off.keep_eval_output = false;
  auto forward = [&](const torch::Tensor& x) { return seq->forward(x); };
  EXPECT_EQ(recalibrate_batchnorm(*seq, forward, serve(data), keep_off).layers, 1);
  EXPECT_TRUE(torch::equal(bn->weight, weight));
  EXPECT_TRUE(torch::equal(bn->bias, bias));
  torch::NoGradGuard no_grad;
  expect_stats_of(*bn, seq[0]->as<torch::nn::Conv2d>()->forward(torch::cat(data)), "bn");
}

struct DirectBatchNormImpl : torch::nn::Module {
  DirectBatchNormImpl() : bn(register_module("inner_bn", torch::nn::BatchNorm2d(2))) {}
  torch::Tensor forward(const torch::Tensor& x) { return bn->forward(x); }
  torch::nn::BatchNorm2d bn;
};
TORCH_MODULE(DirectBatchNorm);

std::string error_text(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Recalibrate, ErrorsNameTheProblem) {
  Classifier model = build_model(ModelOptions{});
  std::string msg = error_text([&] { recalibrate_batchnorm(*model, serve({})); });
  EXPECT_NE(msg.find("no batches"), std::string::npos) << msg;

  DirectBatchNorm direct;
  auto forward = [&](const torch::Tensor& x) { return direct->forward(x); };
  msg = error_text([&] {
    recalibrate_batchnorm(*direct, forward, serve({torch::randn({2, 2, 3, 3})}));
  });
  EXPECT_NE(msg.find("'inner_bn'"), std::string::npos) << msg;
  msg = error_text([&] { recalibrate_batchnorm(*direct, serve({torch::randn({2, 2, 3, 3})})); });
  EXPECT_NE(msg.find("Classifier"), std::string::npos) << msg;
}

}  // namespace
}  // namespace normlab::models
