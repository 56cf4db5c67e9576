// Classifier = features + optional GAP + head: every backbone x every norm, shapes, module
// paths, options reaching the layers, and the errors users can cause.
#include "models/model.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/norm_slots.h"
#include "nn/frn.h"
#include "nn/norm.h"

namespace normlab::models {
namespace {

std::vector<std::string> concrete_norm_names() {
  std::vector<std::string> out;
  for (const auto& name : nn::norm_names()) out.push_back(name == "gn:G" ? "gn:2" : name);
  return out;
}

ModelOptions tiny(const std::string& backbone, const std::string& norm) {
  ModelOptions o;
  o.backbone = backbone;
  o.in_channels = 1;
  o.input_hw = 12;
  o.num_classes = 5;
  o.norm = norm;
  o.width = 4;
  o.depth = 3;
  o.width_mult = 0.25;  // mobilenet_v2: 8..80 channels, 1280 last
  o.head.hidden = 6;
  o.head.norm = norm == "in" ? "bn" : norm;  // heads see vectors, where "in" is refused
  return o;
}

bool refused_for_backbone(const std::string& backbone, const std::string& norm) {
  // Only mlp sees vectors; every other backbone has feature maps.
  return (backbone == "mlp" && norm == "in") || (backbone != "mlp" && norm == "frn:mean");
}

std::string error_text(const ModelOptions& o) {
  try {
    build_model(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

template <typename T>
const T* child_as(const torch::nn::Sequential& seq, size_t i) {
  return dynamic_cast<const T*>(seq->ptr(i).get());
}

TEST(Backbones, Listed) {
  EXPECT_EQ(backbone_names(),
            (std::vector<std::string>{"small_cnn", "mlp", "mobilenet_v2", "resnet18", "resnet50",
                                      "resnet18_cifar", "resnet50_cifar"}));
}

TEST(Classifier, EveryBackboneWithEveryNormRunsInTrainAndEval) {
  torch::manual_seed(0);
  for (const auto& backbone : backbone_names()) {
    for (const auto& norm : concrete_norm_names()) {
      SCOPED_TRACE(backbone + " / " + norm);
      ModelOptions o = tiny(backbone, norm);
      if (refused_for_backbone(backbone, norm)) {
        EXPECT_THROW(build_model(o), Error);
        continue;
      }
      Classifier model = build_model(o);
      // (N, C, H, W); mlp flattens input_hw x input_hw, conv backbones take 8x8 (fast; the
      // ImageNet resnets reach 1x1 at layer3, where "in" still runs).
      const int64_t hw = backbone == "mlp" ? 12 : 8;
      auto x = torch::randn({2, 1, hw, hw});
      for (bool train : {true, false}) {
        model->train(train);
        auto logits = model->forward(x);
        EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 5}));
        EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
        EXPECT_EQ(model->embed(x).sizes(), (std::vector<int64_t>{2, model->feature_dim()}));
      }
      // Gradients reach every parameter. Skipped for the 11-25M-parameter resnets, where
      // allocating the gradients costs more than the rest of this test together.
      if (backbone.rfind("resnet", 0) == 0) continue;
      model->train();
      model->forward(x).sum().backward();
      for (const auto& p : model->named_parameters()) {
        EXPECT_TRUE(p.value().grad().defined()) << p.key();
      }
    }
  }
}

TEST(Classifier, EveryHeadNormRuns) {
  for (const auto& norm : concrete_norm_names()) {
    SCOPED_TRACE(norm);
    ModelOptions o = tiny("small_cnn", "bn");
    o.head.norm = norm;
    if (norm == "in") {
      EXPECT_THROW(build_model(o), Error);
      continue;
    }
    Classifier model = build_model(o);
    EXPECT_EQ(model->forward(torch::randn({2, 1, 12, 12})).sizes(), (std::vector<int64_t>{2, 5}));
    EXPECT_EQ(nn::is_batch_norm(*model->head->ptr(1)), norm == "bn" || norm == "dmbn");
  }
}

TEST(SmallCnn, ChannelsDoubleEveryOtherBlockAndStrideTwiceTo7x7) {
  ModelOptions o;  // 28x28, 1 channel, width 32
  o.width = 8;
  o.depth = 5;
  Classifier model = build_model(o);
  auto params = model->named_parameters();
  const std::vector<int64_t> channels{8, 8, 16, 16, 32};
  int64_t in = 1;
  for (size_t i = 0; i < channels.size(); ++i) {
    auto w = params["features." + std::to_string(i) + ".0.weight"];
    EXPECT_EQ(w.sizes(), (std::vector<int64_t>{channels[i], in, 3, 3})) << "block " << i;
    auto conv =
        dynamic_cast<torch::nn::Conv2dImpl*>(model->features->ptr(i)->named_children()["0"].get());
    ASSERT_NE(conv, nullptr);
    EXPECT_FALSE(conv->options.bias());
    in = channels[i];
  }
  auto maps = model->features->forward(torch::randn({2, 1, 28, 28}));
  EXPECT_EQ(maps.sizes(), (std::vector<int64_t>{2, 32, 7, 7}));
  EXPECT_EQ(model->feature_dim(), 32);
  // GAP: embed is the spatial mean of the feature maps.
  model->eval();
  auto x = torch::randn({2, 1, 28, 28});
  EXPECT_TRUE(torch::allclose(model->embed(x), model->features->forward(x).mean({2, 3})));
}

TEST(Mlp, FlattensAndHasNoPooling) {
  ModelOptions o = tiny("mlp", "bn");
  o.width = 7;
  o.depth = 2;
  Classifier model = build_model(o);
  EXPECT_NE(child_as<torch::nn::FlattenImpl>(model->features, 0), nullptr);
  EXPECT_EQ(model->features->size(), 3u);  // Flatten + 2 blocks
  auto params = model->named_parameters();
  EXPECT_EQ(params["features.1.0.weight"].sizes(), (std::vector<int64_t>{7, 144}));
  EXPECT_EQ(params["features.2.0.weight"].sizes(), (std::vector<int64_t>{7, 7}));
  EXPECT_EQ(model->feature_dim(), 7);
  EXPECT_EQ(model->embed(torch::randn({4, 1, 12, 12})).sizes(), (std::vector<int64_t>{4, 7}));
}

TEST(Classifier, ModulePathsFollowTorchvisionNaming) {
  Classifier cnn = build_model(ModelOptions{});  // small_cnn, bn, mlp head
  auto params = cnn->named_parameters();
  auto buffers = cnn->named_buffers();
  for (const std::string key : {"features.0.0.weight", "features.0.1.weight", "features.0.1.bias",
                                "features.3.0.weight", "head.0.weight", "head.0.bias",
                                "head.1.weight", "head.1.bias", "head.4.weight", "head.4.bias"}) {
    EXPECT_TRUE(params.contains(key)) << key;
  }
  for (const std::string key : {"features.0.1.running_mean", "head.1.running_var"}) {
    EXPECT_TRUE(buffers.contains(key)) << key;
  }
  EXPECT_EQ(params["head.0.weight"].sizes(), (std::vector<int64_t>{256, cnn->feature_dim()}));
  EXPECT_EQ(params["head.4.weight"].sizes(), (std::vector<int64_t>{10, 256}));
  ASSERT_EQ(cnn->head->size(), 5u);
  EXPECT_NE(child_as<torch::nn::LinearImpl>(cnn->head, 0), nullptr);
  EXPECT_NE(child_as<torch::nn::BatchNorm1dImpl>(cnn->head, 1), nullptr);
  EXPECT_NE(child_as<torch::nn::ReLUImpl>(cnn->head, 2), nullptr);
  auto dropout = child_as<torch::nn::DropoutImpl>(cnn->head, 3);
  ASSERT_NE(dropout, nullptr);
  EXPECT_DOUBLE_EQ(dropout->options.p(), 0.2);
  EXPECT_NE(child_as<torch::nn::LinearImpl>(cnn->head, 4), nullptr);

  // Head norm "none" keeps the indices: head.1 is Identity, head.4 the classifier.
  ModelOptions none;
  none.head.norm = "none";
  Classifier plain = build_model(none);
  ASSERT_EQ(plain->head->size(), 5u);
  EXPECT_NE(child_as<torch::nn::IdentityImpl>(plain->head, 1), nullptr);
  EXPECT_TRUE(plain->named_parameters().contains("head.4.weight"));

  // Linear head: just head.0.
  ModelOptions linear;
  linear.head.kind = "linear";
  Classifier lin = build_model(linear);
  ASSERT_EQ(lin->head->size(), 1u);
  EXPECT_EQ(lin->named_parameters()["head.0.weight"].sizes(),
            (std::vector<int64_t>{10, lin->feature_dim()}));

  // FRN in the head on vectors carries its learned epsilon.
  ModelOptions frn;
  frn.head.norm = "frn";
  EXPECT_TRUE(build_model(frn)->named_parameters().contains("head.1.eps_l"));
}

TEST(Classifier, NormSlotsUseTheNormOptionsAndNames) {
  ModelOptions o;
  o.norm = "gn:4";
  o.head.norm = "bn";
  o.norm_options.momentum = 0.25;
  o.norm_options.eps = 1e-3;
  o.width = 8;
  o.depth = 3;
  Classifier model = build_model(o);
  for (size_t i = 0; i < 3; ++i) {
    auto gn = dynamic_cast<torch::nn::GroupNormImpl*>(
        model->features->ptr(i)->named_children()["1"].get());
    ASSERT_NE(gn, nullptr) << "block " << i;
    EXPECT_EQ(gn->options.num_groups(), 4);
    EXPECT_DOUBLE_EQ(gn->options.eps(), 1e-3);
  }
  auto bn = child_as<torch::nn::BatchNorm1dImpl>(model->head, 1);
  ASSERT_NE(bn, nullptr);
  EXPECT_DOUBLE_EQ(bn->options.momentum().value(), 0.25);
  EXPECT_DOUBLE_EQ(bn->options.eps(), 1e-3);
}

TEST(Classifier, FeaturesCloneToAnEqualIndependentCopy) {
  torch::manual_seed(1);
  Classifier model = build_model(tiny("small_cnn", "bn"));
  model->eval();
  auto copy = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(model->features->clone());
  ASSERT_NE(copy, nullptr);
  copy->eval();
  auto x = torch::randn({2, 1, 12, 12});
  EXPECT_TRUE(torch::allclose(copy->forward(x), model->features->forward(x)));
  {
    torch::NoGradGuard no_grad;
    model->named_parameters()["features.0.0.weight"].zero_();
  }
  EXPECT_FALSE(torch::allclose(copy->forward(x), model->features->forward(x)));
}

TEST(Classifier, ErrorsNameTheBadValue) {
  ModelOptions o;
  o.backbone = "resnet9000";
  std::string msg = error_text(o);
  EXPECT_NE(msg.find("resnet9000"), std::string::npos) << msg;
  EXPECT_NE(msg.find("small_cnn, mlp"), std::string::npos) << msg;

  o = ModelOptions{};
  o.head.kind = "transformer";
  msg = error_text(o);
  EXPECT_NE(msg.find("transformer"), std::string::npos) << msg;
  EXPECT_NE(msg.find("linear, mlp, torchvision"), std::string::npos) << msg;

  auto expect_error_on = [](const std::string& key, auto mutate) {
    ModelOptions bad;
    mutate(bad);
    std::string text = error_text(bad);
    EXPECT_NE(text.find(key), std::string::npos) << key << ": '" << text << "'";
  };
  expect_error_on("width", [](ModelOptions& m) { m.width = 0; });
  expect_error_on("width", [](ModelOptions& m) {
    m.backbone = "mlp";
    m.width = -3;
  });
  expect_error_on("depth", [](ModelOptions& m) { m.depth = 0; });
  expect_error_on("in_channels", [](ModelOptions& m) { m.in_channels = 0; });
  expect_error_on("input_hw", [](ModelOptions& m) { m.input_hw = -1; });
  expect_error_on("num_classes", [](ModelOptions& m) { m.num_classes = 0; });
  expect_error_on("width_mult", [](ModelOptions& m) { m.width_mult = 0.0; });
  expect_error_on("dropout", [](ModelOptions& m) { m.dropout = 1.0; });
  expect_error_on("'torchvision'", [](ModelOptions& m) { m.head.kind = "torchvision"; });
  expect_error_on("head.hidden", [](ModelOptions& m) { m.head.hidden = 0; });
  expect_error_on("head.dropout", [](ModelOptions& m) { m.head.dropout = 1.0; });
  expect_error_on("'xn'", [](ModelOptions& m) { m.norm = "xn"; });
  expect_error_on("'in'", [](ModelOptions& m) { m.head.norm = "in"; });
  expect_error_on("'gn:3'", [](ModelOptions& m) { m.norm = "gn:3"; });  // 3 does not divide 32
}

TEST(Classifier, PrefixThenTailEqualsForwardAtEveryCut) {
  torch::manual_seed(0);
  for (const auto& backbone : backbone_names()) {
    SCOPED_TRACE(backbone);
    Classifier model = build_model(tiny(backbone, "bn"));
    model->eval();
    const int64_t hw = backbone == "mlp" ? 12 : 8;
    auto x = torch::randn({2, 1, hw, hw});
    auto expected = model->forward(x);
    for (int64_t cut = 0; cut <= model->num_stages(); ++cut) {
      SCOPED_TRACE(cut);
      auto h = model->forward_prefix(x, cut);
      EXPECT_TRUE(torch::equal(model->forward_from(h, cut), expected));
    }
    EXPECT_TRUE(torch::equal(model->forward_prefix(x, model->num_stages()), model->embed(x)));
    EXPECT_THROW(model->forward_prefix(x, model->num_stages() + 1), c10::Error);
    // Any stretch of stages in between continues a prefix.
    for (int64_t from = 0; from <= model->num_stages(); ++from) {
      for (int64_t to = from; to <= model->num_stages(); ++to) {
        SCOPED_TRACE(std::to_string(from) + " -> " + std::to_string(to));
        EXPECT_TRUE(torch::equal(model->forward_between(model->forward_prefix(x, from), from, to),
                                 model->forward_prefix(x, to)));
      }
    }
    EXPECT_THROW(model->forward_between(x, 1, 0), c10::Error);
    // Every trunk parameter belongs to exactly the stage that runs it; head parameters to none.
    auto stages = model->stage_paths();
    for (const auto& p : model->named_parameters()) {
      int64_t s = model->stage_of(p.key());
      if (p.key().rfind("head.", 0) == 0) {
        EXPECT_EQ(s, model->num_stages()) << p.key();
      } else {
        ASSERT_LT(s, model->num_stages()) << p.key();
      }
    }
  }
  Classifier mobilenet = build_model(tiny("mobilenet_v2", "bn"));
  EXPECT_EQ(mobilenet->stage_of("features.18.0.weight"), 18);
  EXPECT_EQ(mobilenet->stage_of("features.1.conv.0.0.weight"), 1);
  EXPECT_EQ(mobilenet->num_stages(), 20);  // features.0..18 + pooling
  Classifier resnet = build_model(tiny("resnet18", "bn"));
  EXPECT_EQ(resnet->stage_of("bn1.running_mean"), 0);
  EXPECT_EQ(resnet->stage_of("layer3.1.conv2.weight"), 3);
}

// BN-BFN (seed 004): every second backbone BN slot becomes a batch-free norm.
// The norm table's name for a built layer ("bn", "ln", "gn", "dmbn", "none", ...).
std::string kind(const std::shared_ptr<torch::nn::Module>& m) {
  for (const auto& row : nn::norm_table()) {
    if (row.recognises(*m)) return row.name;
  }
  return "?";
}

TEST(BnBfn, AlternateReplacesEverySecondBackboneBatchNorm) {
  ModelOptions o = tiny("mlp", "bn");
  o.depth = 4;
  o.bn_bfn = "alternate";
  Classifier model = build_model(o);
  auto modules = model->named_modules();
  EXPECT_EQ(kind(modules["features.1.1"]), "bn");
  EXPECT_EQ(kind(modules["features.2.1"]), "ln");
  EXPECT_EQ(kind(modules["features.3.1"]), "bn");
  EXPECT_EQ(kind(modules["features.4.1"]), "ln");
  EXPECT_EQ(kind(modules["head.1"]), "bn");  // the head is not part of the alternation
  EXPECT_EQ(model->forward(torch::randn({2, 1, 12, 12})).sizes(), (std::vector<int64_t>{2, 5}));

  // Another batch-free norm; explicit overrides still win over the alternation.
  o.bfn_norm = "gn:2";
  o.norm_overrides = {{"features.2.1", "bn"}, {"features.3.1", "none"}};
  modules = build_model(o)->named_modules();
  EXPECT_EQ(kind(modules["features.1.1"]), "bn");
  EXPECT_EQ(kind(modules["features.2.1"]), "bn");
  EXPECT_NE(dynamic_cast<torch::nn::IdentityImpl*>(modules["features.3.1"].get()), nullptr);
  EXPECT_EQ(kind(modules["features.4.1"]), "gn");

  // DMBN slots alternate as BN slots do; small_cnn's maps get LayerNorm over (C, H, W).
  ModelOptions cnn = tiny("small_cnn", "dmbn");
  cnn.depth = 3;
  cnn.bn_bfn = "alternate";
  modules = build_model(cnn)->named_modules();
  EXPECT_EQ(kind(modules["features.0.1"]), "dmbn");
  auto* ln = dynamic_cast<torch::nn::GroupNormImpl*>(modules["features.1.1"].get());
  ASSERT_NE(ln, nullptr);  // "ln" on maps: GroupNorm with one group
  EXPECT_EQ(ln->options.num_groups(), 1);
  EXPECT_EQ(kind(modules["features.2.1"]), "dmbn");

  // Off (the default) leaves every slot alone.
  ModelOptions off = tiny("mlp", "bn");
  off.depth = 4;
  modules = build_model(off)->named_modules();
  for (int i = 1; i <= 4; ++i)
    EXPECT_EQ(kind(modules["features." + std::to_string(i) + ".1"]), "bn");
}

TEST(BnBfn, XbnPresetsPutGroupNormInOneBottleneckSlot) {
  for (int slot : {1, 2, 3}) {
    SCOPED_TRACE(slot);
    ModelOptions o;
    o.backbone = "resnet50_cifar";
    o.in_channels = 3;
    o.bn_bfn = "xbn-p" + std::to_string(slot);
    Classifier model = build_model(o);
    int groupnorms = 0;
    for (const auto& item : model->named_modules()) {
      if (item.key() == "bn1") continue;  // the stem, below
      auto* gn = dynamic_cast<torch::nn::GroupNormImpl*>(item.value().get());
      const bool in_slot = path_matches("layer*.*.bn" + std::to_string(slot), item.key());
      if (in_slot) {
        ASSERT_NE(gn, nullptr) << item.key();
        EXPECT_EQ(gn->options.num_groups(), 64);  // Huang et al.'s official scripts
        ++groupnorms;
      } else {
        EXPECT_EQ(gn, nullptr) << item.key();
      }
    }
    EXPECT_EQ(groupnorms, 3 + 4 + 6 + 3);  // one per bottleneck
    auto modules = model->named_modules();
    auto* stem = dynamic_cast<torch::nn::GroupNormImpl*>(modules["bn1"].get());
    ASSERT_NE(stem, nullptr);  // the official XBNBlock ResNets' stem norm is batch-free too
    EXPECT_EQ(stem->options.num_groups(), 64);
    EXPECT_EQ(kind(modules["layer2.0.downsample.1"]), "bn");
  }
  ModelOptions o;
  o.backbone = "resnet50_cifar";
  o.in_channels = 3;
  o.bn_bfn = "xbn-p2";
  o.norm_overrides = {{"layer1.0.bn2", "bn"}};  // overrides still win
  auto modules = build_model(o)->named_modules();
  EXPECT_EQ(kind(modules["layer1.0.bn2"]), "bn");
  EXPECT_NE(dynamic_cast<torch::nn::GroupNormImpl*>(modules["layer1.1.bn2"].get()), nullptr);
}

TEST(BnBfn, BadPlacementsAreErrorsNamingTheKey) {
  ModelOptions o = tiny("small_cnn", "bn");
  o.bn_bfn = "xbn-p2";
  std::string msg = error_text(o);
  EXPECT_NE(msg.find("model.bn_bfn"), std::string::npos) << msg;
  EXPECT_NE(msg.find("small_cnn"), std::string::npos) << msg;
  o.bn_bfn = "every-other";
  msg = error_text(o);
  EXPECT_NE(msg.find("model.bn_bfn"), std::string::npos) << msg;
  EXPECT_NE(msg.find("every-other"), std::string::npos) << msg;
  // Alternating needs BatchNorm slots to alternate: an LN model has none.
  o = tiny("mlp", "ln");
  o.bn_bfn = "alternate";
  msg = error_text(o);
  EXPECT_NE(msg.find("model.bn_bfn"), std::string::npos) << msg;
  EXPECT_NE(msg.find("0 BatchNorm slot"), std::string::npos) << msg;
}

}  // namespace
}  // namespace normlab::models
