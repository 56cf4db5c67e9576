// Per-slot norm overrides: the path matcher and NormFactory as the backbones use them
// (XBNBlock-P2 = GroupNorm in the second slot of every bottleneck).
#include "models/norm_slots.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "core/error.h"
#include "models/model.h"

namespace normlab::models {
namespace {

TEST(PathMatches, ComponentsGlobsAndPrefixes) {
  EXPECT_TRUE(path_matches("layer*.*.bn2", "layer1.0.bn2"));
  EXPECT_TRUE(path_matches("layer*.*.bn2", "layer4.2.bn2"));
  EXPECT_FALSE(path_matches("layer*.*.bn2", "layer1.0.bn1"));
  EXPECT_FALSE(path_matches("layer*.*.bn2", "layer1.0.downsample.1"));
  EXPECT_TRUE(path_matches("layer2", "layer2.0.downsample.1"));  // prefix on a boundary
  EXPECT_FALSE(path_matches("layer2", "layer20.0.bn1"));
  EXPECT_FALSE(path_matches("features.1", "features.10.conv.0.1"));
  EXPECT_TRUE(path_matches("*", "bn1"));
  EXPECT_TRUE(path_matches("features.*.conv.*.1", "features.3.conv.1.1"));
  EXPECT_TRUE(path_matches("*.bn*", "x.bn3"));
  EXPECT_FALSE(path_matches("bn1.weight", "bn1"));  // longer than the path
  EXPECT_FALSE(path_matches("", "bn1"));
}

ModelOptions resnet50_p2() {
  ModelOptions o;
  o.backbone = "resnet50_cifar";
  o.in_channels = 3;
  o.norm_overrides = {{"layer*.*.bn2", "gn:16"}};
  return o;
}

TEST(NormOverrides, XbnBlockP2PutsGroupNormInTheSecondSlotOnly) {
  Classifier model = build_model(resnet50_p2());
  int groupnorms = 0;
  for (const auto& item : model->named_modules()) {
    const std::string& path = item.key();
    auto* gn = dynamic_cast<torch::nn::GroupNormImpl*>(item.value().get());
    const bool is_bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(item.value().get()) != nullptr;
    const bool second_slot = path_matches("layer*.*.bn2", path);
    if (second_slot) {
      ASSERT_NE(gn, nullptr) << path;
      EXPECT_EQ(gn->options.num_groups(), 16);
      ++groupnorms;
    } else if (gn != nullptr) {
      ADD_FAILURE() << "GroupNorm outside the second slot: " << path;
    }
    if (path == "bn1" || path == "layer1.0.bn1" || path == "layer3.2.bn3" ||
        path == "layer2.0.downsample.1") {
      EXPECT_TRUE(is_bn) << path;
    }
  }
  EXPECT_EQ(groupnorms, 3 + 4 + 6 + 3);  // one per bottleneck
  EXPECT_EQ(model->forward(torch::randn({2, 3, 8, 8})).sizes(), (std::vector<int64_t>{2, 10}));
}

TEST(NormOverrides, LastMatchWinsAndHeadSlotsCount) {
  ModelOptions o;
  o.backbone = "resnet18_cifar";
  o.in_channels = 3;
  o.norm_overrides = {{"layer*", "gn:4"}, {"layer1", "none"}, {"head.1", "ln"}};
  Classifier model = build_model(o);
  auto modules = model->named_modules();
  EXPECT_NE(dynamic_cast<torch::nn::IdentityImpl*>(modules["layer1.0.bn1"].get()), nullptr);
  EXPECT_NE(dynamic_cast<torch::nn::GroupNormImpl*>(modules["layer2.0.bn1"].get()), nullptr);
  EXPECT_NE(dynamic_cast<torch::nn::GroupNormImpl*>(modules["layer2.0.downsample.1"].get()),
            nullptr);
  EXPECT_NE(dynamic_cast<torch::nn::BatchNorm2dImpl*>(modules["bn1"].get()), nullptr);
  EXPECT_NE(dynamic_cast<torch::nn::LayerNormImpl*>(modules["head.1"].get()), nullptr);

  ModelOptions m;
  m.backbone = "mobilenet_v2";
  m.width_mult = 0.25;
  m.norm_overrides = {{"features.*.conv.*.1", "gn:8"}};
  Classifier mobile = build_model(m);
  auto mm = mobile->named_modules();
  EXPECT_NE(dynamic_cast<torch::nn::GroupNormImpl*>(mm["features.2.conv.1.1"].get()), nullptr);
  EXPECT_NE(dynamic_cast<torch::nn::BatchNorm2dImpl*>(mm["features.2.conv.3"].get()), nullptr);
  EXPECT_NE(dynamic_cast<torch::nn::BatchNorm2dImpl*>(mm["features.0.1"].get()), nullptr);
}

std::string error_text(const ModelOptions& o) {
  try {
    build_model(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(NormOverrides, BadOverridesAreErrorsNamingThem) {
  ModelOptions o = resnet50_p2();
  o.norm_overrides = {{"layer*.*.bn2", "gn:16"}, {"layer9.*.bn2", "gn:16"}};
  std::string msg = error_text(o);
  EXPECT_NE(msg.find("'layer9.*.bn2'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("matches no norm slot"), std::string::npos) << msg;
  EXPECT_NE(msg.find("layer1.0.bn1"), std::string::npos) << msg;  // the hint lists slot paths

  o.norm_overrides = {{"bn1", "xn"}};
  msg = error_text(o);
  EXPECT_NE(msg.find("'xn'"), std::string::npos) << msg;

  o.norm_overrides = {{"layer1.0.bn2", "gn:7"}};  // 7 does not divide 64
  msg = error_text(o);
  EXPECT_NE(msg.find("'gn:7'"), std::string::npos) << msg;

  ModelOptions cnn;  // small_cnn slots are overridable too
  cnn.norm_overrides = {{"features.0.1", "none"}, {"features.9", "ln"}};
  msg = error_text(cnn);
  EXPECT_NE(msg.find("'features.9'"), std::string::npos) << msg;
}

}  // namespace
}  // namespace normlab::models
