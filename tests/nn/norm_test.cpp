// The norm factory: names, parsing, which layer each name builds, refusals, is_batch_norm.
#include "nn/norm.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "nn/frn.h"

namespace normlab::nn {
namespace {

// norm_names() lists gn as "gn:G"; tests use two groups (every channel count here is even).
std::vector<std::string> concrete_norm_names() {
  std::vector<std::string> out;
  for (const auto& name : norm_names()) out.push_back(name == "gn:G" ? "gn:2" : name);
  return out;
}

// The documented refusals: "in" on vectors, "frn:mean" on maps.
bool refused(const std::string& name, NormInput input) {
  return (name == "in" && input == NormInput::kVector) ||
         (name == "frn:mean" && input == NormInput::kMap);
}

// Shared ownership: the AnyModule passed in is often a temporary.
template <typename T>
std::shared_ptr<T> as(const torch::nn::AnyModule& any) {
  return std::dynamic_pointer_cast<T>(any.ptr());
}

std::string error_text(const std::string& spec, int64_t channels, NormInput input) {
  try {
    make_norm(spec, channels, input);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(NormNames, ListsEveryKind) {
  EXPECT_EQ(norm_names(), (std::vector<std::string>{"bn", "ln", "gn:G", "in", "frn", "frn:mean",
                                                    "dmbn", "none"}));
}

TEST(ParseNorm, AcceptsEveryListedName) {
  for (const auto& name : concrete_norm_names()) {
    NormSpec spec = parse_norm(name);
    EXPECT_EQ(spec.text, name);
  }
  EXPECT_EQ(parse_norm("bn").kind, "bn");
  EXPECT_EQ(parse_norm("none").kind, "none");
  NormSpec gn = parse_norm("gn:16");
  EXPECT_EQ(gn.kind, "gn");
  EXPECT_EQ(gn.groups, 16);
  NormSpec frn = parse_norm("frn");
  EXPECT_EQ(frn.kind, "frn");
  EXPECT_FALSE(frn.frn_mean);
  NormSpec frn_mean = parse_norm("frn:mean");
  EXPECT_EQ(frn_mean.kind, "frn");
  EXPECT_TRUE(frn_mean.frn_mean);
}

TEST(ParseNorm, RejectsBadNamesNamingTheValueAndTheValidOnes) {
  for (const std::string bad : {"", "BN", "batchnorm", "gn", "gn:", "gn:0", "gn:-2", "gn:x",
                                "gn:2x", "frn:max", "bn:1", "none:"}) {
    try {
      parse_norm(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("'" + bad + "'"), std::string::npos) << what;
      EXPECT_NE(what.find("bn, ln, gn:G, in, frn, frn:mean, dmbn, none"), std::string::npos)
          << what;
    }
  }
}

TEST(ParseNorm, BatchNormTakesItsOwnMomentum) {
  NormSpec spec = parse_norm("bn:momentum=0.8");
  EXPECT_EQ(spec.kind, "bn");
  ASSERT_TRUE(spec.momentum.has_value());
  EXPECT_DOUBLE_EQ(*spec.momentum, 0.8);
  EXPECT_EQ(spec.text, "bn:momentum=0.8");
  EXPECT_FALSE(parse_norm("bn").momentum.has_value());
  EXPECT_DOUBLE_EQ(*parse_norm("bn:momentum=0").momentum, 0.0);  // [0, 1], as PyTorch
  EXPECT_DOUBLE_EQ(*parse_norm("bn:momentum=1").momentum, 1.0);

  // The slot's momentum wins over NormOptions::momentum; plain "bn" keeps the latter.
  const NormOptions opts{/*eps=*/1e-3, /*momentum=*/0.25};
  auto bn1 =
      as<torch::nn::BatchNorm1dImpl>(make_norm("bn:momentum=0.8", 4, NormInput::kVector, opts));
  ASSERT_NE(bn1, nullptr);
  EXPECT_DOUBLE_EQ(bn1->options.momentum().value(), 0.8);
  EXPECT_DOUBLE_EQ(bn1->options.eps(), 1e-3);
  auto bn2 = as<torch::nn::BatchNorm2dImpl>(make_norm("bn:momentum=0.8", 4, NormInput::kMap, opts));
  ASSERT_NE(bn2, nullptr);
  EXPECT_DOUBLE_EQ(bn2->options.momentum().value(), 0.8);
  EXPECT_DOUBLE_EQ(as<torch::nn::BatchNorm1dImpl>(make_norm("bn", 4, NormInput::kVector, opts))
                       ->options.momentum()
                       .value(),
                   0.25);
  // running = (1 - B) running + B batch (PyTorch's convention): from 0, one batch gives B mean.
  torch::manual_seed(0);
  const auto x = torch::randn({8, 4}) + 1.0;
  bn1->train();
  bn1->forward(x);
  EXPECT_TRUE(torch::allclose(bn1->running_mean, 0.8 * x.mean(0), 1e-6, 1e-6));
}

TEST(ParseNorm, BadBatchNormMomentumIsRefusedNamingTheValue) {
  for (const std::string bad :
       {"bn:momentum=", "bn:momentum=1.5", "bn:momentum=-0.1", "bn:momentum=0.5x",
        "bn:momentum=abc", "bn:mom=0.1", "bn:momentum=nan"}) {
    try {
      parse_norm(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("'" + bad + "'"), std::string::npos) << what;
      EXPECT_NE(what.find("momentum"), std::string::npos) << what;
    }
  }
  // The number is quoted back as the user wrote it.
  try {
    parse_norm("bn:momentum=1.5");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("got '1.5'"), std::string::npos) << e.what();
  }
}

TEST(MakeNorm, BuildsTheDocumentedLayers) {
  const NormOptions opts{/*eps=*/1e-3, /*momentum=*/0.25};
  const auto vec = NormInput::kVector;
  const auto map = NormInput::kMap;

  auto bn1 = as<torch::nn::BatchNorm1dImpl>(make_norm("bn", 6, vec, opts));
  ASSERT_NE(bn1, nullptr);
  EXPECT_EQ(bn1->options.num_features(), 6);
  EXPECT_DOUBLE_EQ(bn1->options.eps(), 1e-3);
  EXPECT_DOUBLE_EQ(bn1->options.momentum().value(), 0.25);
  auto bn2 = as<torch::nn::BatchNorm2dImpl>(make_norm("bn", 6, map, opts));
  ASSERT_NE(bn2, nullptr);
  EXPECT_DOUBLE_EQ(bn2->options.eps(), 1e-3);
  EXPECT_DOUBLE_EQ(bn2->options.momentum().value(), 0.25);

  auto ln1 = as<torch::nn::LayerNormImpl>(make_norm("ln", 6, vec, opts));
  ASSERT_NE(ln1, nullptr);
  EXPECT_EQ(ln1->options.normalized_shape(), std::vector<int64_t>{6});
  EXPECT_DOUBLE_EQ(ln1->options.eps(), 1e-3);
  auto ln2 = as<torch::nn::GroupNormImpl>(make_norm("ln", 6, map, opts));
  ASSERT_NE(ln2, nullptr);
  EXPECT_EQ(ln2->options.num_groups(), 1);

  auto gn2 = as<torch::nn::GroupNormImpl>(make_norm("gn:3", 6, map, opts));
  ASSERT_NE(gn2, nullptr);
  EXPECT_EQ(gn2->options.num_groups(), 3);
  EXPECT_DOUBLE_EQ(gn2->options.eps(), 1e-3);

  auto in2 = as<torch::nn::InstanceNorm2dImpl>(make_norm("in", 6, map, opts));
  ASSERT_NE(in2, nullptr);
  EXPECT_TRUE(in2->options.affine());
  EXPECT_FALSE(in2->options.track_running_stats());

  EXPECT_NE(as<torch::nn::IdentityImpl>(make_norm("none", 6, vec)), nullptr);
  EXPECT_NE(as<torch::nn::IdentityImpl>(make_norm("none", 6, map)), nullptr);

  auto frn_vec = as<FrnImpl>(make_norm("frn", 6, vec));
  ASSERT_NE(frn_vec, nullptr);
  EXPECT_TRUE(frn_vec->options.learned_eps());
  EXPECT_FALSE(frn_vec->options.mean_over_features());
  auto frn_map = as<FrnImpl>(make_norm("frn", 6, map));
  ASSERT_NE(frn_map, nullptr);
  EXPECT_FALSE(frn_map->options.learned_eps());
  auto frn_mean = as<FrnImpl>(make_norm("frn:mean", 6, vec));
  ASSERT_NE(frn_mean, nullptr);
  EXPECT_TRUE(frn_mean->options.mean_over_features());
  EXPECT_FALSE(frn_mean->options.learned_eps());
}

TEST(MakeNorm, GroupNormOnVectorsIsGroupNormOnNC1) {
  torch::manual_seed(3);
  auto norm = make_norm("gn:2", 6, NormInput::kVector);
  EXPECT_EQ(as<torch::nn::GroupNormImpl>(norm), nullptr);  // a wrapper, not GroupNorm itself
  auto x = torch::randn({5, 6});                           // (N, C)
  auto y = norm.forward(x);
  ASSERT_EQ(y.sizes(), x.sizes());
  auto expected = torch::group_norm(x.unsqueeze(-1), 2).squeeze(-1);  // weight 1, bias 0
  EXPECT_TRUE(torch::allclose(y, expected, 1e-6, 1e-6));
}

TEST(MakeNorm, RefusesInvalidCombinationsWithTheValue) {
  std::string in_vec = error_text("in", 8, NormInput::kVector);
  EXPECT_NE(in_vec.find("'in'"), std::string::npos) << in_vec;
  EXPECT_NE(in_vec.find("vectors"), std::string::npos) << in_vec;
  std::string mean_map = error_text("frn:mean", 8, NormInput::kMap);
  EXPECT_NE(mean_map.find("'frn:mean'"), std::string::npos) << mean_map;
  std::string gn = error_text("gn:3", 8, NormInput::kMap);
  EXPECT_NE(gn.find("3 groups do not divide 8 channels"), std::string::npos) << gn;
  EXPECT_NE(error_text("gn:3", 8, NormInput::kVector), "");
  EXPECT_NE(error_text("bn", 0, NormInput::kMap), "");
  EXPECT_NE(error_text("unknown", 8, NormInput::kMap), "");
}

// Every name x both input kinds: builds (or is refused as documented), keeps the shape in
// train and eval mode, and owns its parameters directly ("weight", not "norm.weight") so that
// state_dict paths read "head.1.weight".
TEST(MakeNorm, EveryNameRunsOnVectorsAndMaps) {
  torch::manual_seed(0);
  for (const auto& name : concrete_norm_names()) {
    for (auto input : {NormInput::kVector, NormInput::kMap}) {
      SCOPED_TRACE(name + (input == NormInput::kVector ? " vector" : " map"));
      if (refused(name, input)) {
        EXPECT_THROW(make_norm(name, 4, input), Error);
        continue;
      }
      auto norm = make_norm(name, 4, input);
      auto x = input == NormInput::kVector ? torch::randn({3, 4}) : torch::randn({3, 4, 5, 5});
      for (bool train : {true, false}) {
        norm.ptr()->train(train);
        auto y = norm.forward(x);
        EXPECT_EQ(y.sizes(), x.sizes());
        EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
      }
      for (const auto& p : norm.ptr()->named_parameters()) {
        EXPECT_EQ(p.key().find('.'), std::string::npos) << p.key();
      }
      if (name != "none") {
        EXPECT_TRUE(norm.ptr()->named_parameters().contains("weight"));
        EXPECT_TRUE(norm.ptr()->named_parameters().contains("bias"));
      }
    }
  }
}

// The norms normalising with batch statistics and keeping running estimates: BatchNorm and
// DMBN (a BatchNorm with per-candidate shadow estimates).
bool batch_statistics(const std::string& name) { return name == "bn" || name == "dmbn"; }

TEST(IsBatchNorm, TrueOnlyForBatchNorm) {
  for (const auto& name : concrete_norm_names()) {
    for (auto input : {NormInput::kVector, NormInput::kMap}) {
      if (refused(name, input)) continue;
      auto norm = make_norm(name, 4, input);
      EXPECT_EQ(is_batch_norm(*norm.ptr()), batch_statistics(name)) << name;
    }
  }
  EXPECT_FALSE(is_batch_norm(*torch::nn::Linear(3, 4)));
  EXPECT_TRUE(is_batch_norm(*torch::nn::BatchNorm3d(4)));
}

TEST(NormTraits, EveryBuiltNormIsRecognisedWithItsTableRow) {
  for (const auto& name : concrete_norm_names()) {
    const std::string kind = name.substr(0, name.find(':'));
    const NormKind* row = nullptr;
    for (const auto& k : norm_table()) {
      if (k.name == kind) row = &k;
    }
    ASSERT_NE(row, nullptr) << name;
    for (auto input : {NormInput::kVector, NormInput::kMap}) {
      if (refused(name, input)) continue;
      auto norm = make_norm(name, 4, input);
      auto traits = norm_traits(*norm.ptr());
      if (name == "none") {
        EXPECT_FALSE(traits.has_value());
        continue;
      }
      ASSERT_TRUE(traits.has_value()) << name;
      EXPECT_EQ(traits->batch_statistics, row->traits.batch_statistics) << name;
      EXPECT_EQ(traits->running_statistics, batch_statistics(name)) << name;
      EXPECT_EQ(traits->batch_free, !batch_statistics(name)) << name;
    }
  }
  EXPECT_FALSE(norm_traits(*torch::nn::Linear(3, 4)).has_value());
}

}  // namespace
}  // namespace normlab::nn
