// mobilenet_v2 in torchvision's layout: state_dict keys and shapes, the width multiplier's
// rounding, torchvision's head, and the TF 'SAME' padding variant.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "models/model.h"

namespace normlab::models {
namespace {

ModelOptions mobilenet(double width_mult, const std::string& head_kind = "torchvision") {
  ModelOptions o;
  o.backbone = "mobilenet_v2";
  o.in_channels = 3;
  o.num_classes = 10;
  o.width_mult = width_mult;
  o.head.kind = head_kind;
  return o;
}

std::vector<std::string> state_keys(torch::nn::Module& model) {
  std::vector<std::string> keys;
  for (const auto& p : model.named_parameters()) keys.push_back(p.key());
  for (const auto& b : model.named_buffers()) keys.push_back(b.key());
  return keys;
}

std::vector<int64_t> shape_of(torch::nn::Module& model, const std::string& key) {
  auto params = model.named_parameters();
  if (params.contains(key)) return params[key].sizes().vec();
  auto buffers = model.named_buffers();
  if (buffers.contains(key)) return buffers[key].sizes().vec();
  ADD_FAILURE() << "no key " << key;
  return {};
}

TEST(MobileNetV2, KeysAndShapesAreTorchvisions) {
  Classifier model = build_model(mobilenet(1.0));
  // torchvision.models.mobilenet_v2().state_dict() has 314 entries.
  EXPECT_EQ(state_keys(*model).size(), 314u);
  const std::vector<std::pair<std::string, std::vector<int64_t>>> expected = {
      {"features.0.0.weight", {32, 3, 3, 3}},
      {"features.0.1.running_var", {32}},
      {"features.1.conv.0.0.weight", {32, 1, 3, 3}},  // t = 1: depthwise first
      {"features.1.conv.0.1.weight", {32}},
      {"features.1.conv.1.weight", {16, 32, 1, 1}},
      {"features.1.conv.2.running_mean", {16}},
      {"features.2.conv.0.0.weight", {96, 16, 1, 1}},  // t = 6: expand, depthwise, project
      {"features.2.conv.1.0.weight", {96, 1, 3, 3}},
      {"features.2.conv.2.weight", {24, 96, 1, 1}},
      {"features.2.conv.3.num_batches_tracked", {}},
      {"features.17.conv.2.weight", {320, 960, 1, 1}},
      {"features.18.0.weight", {1280, 320, 1, 1}},
      {"features.18.1.bias", {1280}},
      {"classifier.1.weight", {10, 1280}},
      {"classifier.1.bias", {10}},
  };
  for (const auto& [key, shape] : expected) EXPECT_EQ(shape_of(*model, key), shape) << key;
  EXPECT_EQ(model->feature_dim(), 1280);
  ASSERT_EQ(model->head->size(), 2u);
  auto* dropout = dynamic_cast<torch::nn::DropoutImpl*>(model->head->ptr(0).get());
  ASSERT_NE(dropout, nullptr);
  EXPECT_DOUBLE_EQ(dropout->options.p(), 0.2);
  EXPECT_EQ(model->named_children()["classifier"].get(), model->head.ptr().get());
  EXPECT_EQ(model->features->size(), 19u);
}

TEST(MobileNetV2, WidthMultiplierFollowsMakeDivisible) {
  // 0.25: 32 * 0.25 = 8; last stays 1280 = 1280 * max(1, w).
  Classifier quarter = build_model(mobilenet(0.25));
  EXPECT_EQ(shape_of(*quarter, "features.0.0.weight"), (std::vector<int64_t>{8, 3, 3, 3}));
  EXPECT_EQ(shape_of(*quarter, "features.18.0.weight"), (std::vector<int64_t>{1280, 80, 1, 1}));
  // 0.35: 32 * 0.35 = 11.2 rounds to 8, which is more than 10% below, so 16.
  Classifier narrow = build_model(mobilenet(0.35));
  EXPECT_EQ(shape_of(*narrow, "features.0.0.weight"), (std::vector<int64_t>{16, 3, 3, 3}));
  // 1.4: last = make_divisible(1280 * 1.4) = 1792.
  Classifier wide = build_model(mobilenet(1.4));
  EXPECT_EQ(shape_of(*wide, "features.18.0.weight"), (std::vector<int64_t>{1792, 448, 1, 1}));
  EXPECT_EQ(wide->feature_dim(), 1792);
}

TEST(MobileNetV2, NormalHeadsSitAtHead) {
  Classifier model = build_model(mobilenet(0.25, "linear"));
  auto keys = state_keys(*model);
  EXPECT_NE(std::find(keys.begin(), keys.end(), "head.0.weight"), keys.end());
  EXPECT_EQ(std::find(keys.begin(), keys.end(), "classifier.1.weight"), keys.end());
}

TEST(MobileNetV2, TfSamePaddingKeepsKeysAndPadsRightAndBottom) {
  ModelOptions o = mobilenet(0.25);
  Classifier plain = build_model(o);
  o.tf_same_padding = true;
  Classifier tf = build_model(o);
  EXPECT_EQ(state_keys(*plain), state_keys(*tf));
  // The stem conv is still a Conv2d (it pads its input itself, then convolves unpadded).
  auto* stem =
      dynamic_cast<torch::nn::Conv2dImpl*>(tf->features->ptr(0)->named_children()["0"].get());
  ASSERT_NE(stem, nullptr);

  // Stem conv against a hand-padded convolution: pad (left 0, right 1, top 0, bottom 1) for
  // an even size, (1, 1) for an odd one (TF 'SAME'); symmetric padding 1 would differ.
  namespace F = torch::nn::functional;
  tf->eval();
  auto* stem_block = tf->features->ptr(0)->as<torch::nn::Sequential>();
  ASSERT_NE(stem_block, nullptr);
  for (int64_t hw : {16, 15}) {
    SCOPED_TRACE(hw);
    auto x = torch::randn({2, 3, hw, hw});
    const int64_t before = hw % 2 == 0 ? 0 : 1;
    auto want = F::conv2d(torch::constant_pad_nd(x, {before, 1, before, 1}), stem->weight,
                          F::Conv2dFuncOptions().stride(2));
    auto got = stem_block->begin()->forward(x);  // the conv alone
    EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5));
    if (hw % 2 == 0) {
      EXPECT_FALSE(torch::allclose(
          got, F::conv2d(x, stem->weight, F::Conv2dFuncOptions().stride(2).padding(1)), 1e-3,
          1e-3));
    }
    EXPECT_EQ(tf->features->forward(x).size(2), (hw + 31) / 32);  // the whole trunk runs
  }
}

TEST(MobileNetV2, FeaturesCloneWithTfPadding) {
  ModelOptions o = mobilenet(0.25);
  o.tf_same_padding = true;
  Classifier model = build_model(o);
  model->eval();
  auto copy = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(model->features->clone());
  ASSERT_NE(copy, nullptr);
  copy->eval();
  auto x = torch::randn({2, 3, 32, 32});
  EXPECT_TRUE(torch::allclose(copy->forward(x), model->features->forward(x), 1e-5, 1e-6));
}

}  // namespace
}  // namespace normlab::models
