// Golden tests against torchvision (scripts/gen_model_fixtures.py): the same weights and
// random BN statistics give the same eval-mode outputs. mobilenet_v2 (width 0.25, with the TF
// 'SAME' padding reference) is a committed fixture; the ResNet state dicts are 45-100 MB, so
// they are generated at test time into a temporary folder when /usr/bin/python3 can import
// torchvision, and the tests skip themselves otherwise.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "models/model.h"

namespace normlab::models {
namespace {

namespace fs = std::filesystem;

fs::path source_dir() {
  if (const char* env = std::getenv("NORMLAB_SOURCE_DIR")) return env;
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

fs::path fixture_dir() {
  // ctest sets NORMLAB_FIXTURES; when the binary is run by hand, fall back to the source tree.
  if (const char* env = std::getenv("NORMLAB_FIXTURES")) return fs::path(env) / "models";
  return fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "models";
}

c10::impl::GenericDict load_fixture(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open fixture " + path.string());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toGenericDict();
}

// Copies a torchvision state dict into `model` by key, strictly: every key on both sides
// matched, shapes and dtypes equal.
::testing::AssertionResult load_state_dict(torch::nn::Module& model,
                                           const c10::impl::GenericDict& state) {
  std::map<std::string, torch::Tensor> mine;
  for (const auto& p : model.named_parameters()) mine[p.key()] = p.value();
  for (const auto& b : model.named_buffers()) mine[b.key()] = b.value();
  torch::NoGradGuard no_grad;
  size_t matched = 0;
  for (const auto& entry : state) {
    const std::string key = entry.key().toStringRef();
    const torch::Tensor value = entry.value().toTensor();
    auto it = mine.find(key);
    if (it == mine.end()) return ::testing::AssertionFailure() << "model lacks key " << key;
    if (it->second.sizes() != value.sizes() || it->second.dtype() != value.dtype()) {
      return ::testing::AssertionFailure()
             << key << ": model " << it->second.sizes() << " " << it->second.dtype()
             << ", torchvision " << value.sizes() << " " << value.dtype();
    }
    it->second.copy_(value);
    ++matched;
  }
  if (matched != mine.size()) {
    for (const auto& [key, t] : mine) {
      if (!state.contains(key)) return ::testing::AssertionFailure() << "torchvision lacks " << key;
    }
  }
  return ::testing::AssertionSuccess();
}

// Max abs diff, relative to the reference's max abs value; printed for the record.
::testing::AssertionResult matches(const std::string& name, const torch::Tensor& got,
                                   const torch::Tensor& want) {
  if (got.sizes() != want.sizes()) {
    return ::testing::AssertionFailure() << "shape " << got.sizes() << " vs " << want.sizes();
  }
  const double abs_diff = (got - want).abs().max().item<double>();
  const double rel = abs_diff / want.abs().max().item<double>();
  std::cout << "[ fidelity ] " << name << ": max abs diff " << abs_diff << ", relative " << rel
            << "\n";
  if (rel > 1e-5) return ::testing::AssertionFailure() << name << ": relative error " << rel;
  return ::testing::AssertionSuccess();
}

Classifier model_for(const c10::impl::GenericDict& f, bool tf_same_padding = false) {
  ModelOptions o;
  o.backbone = f.at("backbone").toStringRef();
  o.in_channels = 3;
  o.num_classes = static_cast<int64_t>(f.at("num_classes").toTensor().item<double>());
  o.width_mult = f.at("width_mult").toTensor().item<double>();
  o.head.kind = "torchvision";
  o.tf_same_padding = tf_same_padding;  // norm "bn", eps 1e-5, momentum 0.1: torchvision's
  Classifier model = build_model(o);
  model->eval();
  return model;
}

TEST(Fidelity, MobileNetV2MatchesTorchvision) {
  auto f = load_fixture(fixture_dir() / "mobilenet_v2.pt");
  Classifier model = model_for(f);
  ASSERT_TRUE(load_state_dict(*model, f.at("state_dict").toGenericDict()));
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(
      matches("mobilenet_v2 (w 0.25)", model->forward(f.at("x").toTensor()), f.at("y").toTensor()));
}

TEST(Fidelity, MobileNetV2TfSamePaddingMatchesPaddedReference) {
  auto f = load_fixture(fixture_dir() / "mobilenet_v2.pt");
  Classifier model = model_for(f, /*tf_same_padding=*/true);
  ASSERT_TRUE(load_state_dict(*model, f.at("state_dict").toGenericDict()));
  torch::NoGradGuard no_grad;
  const auto y = model->forward(f.at("x").toTensor());
  EXPECT_TRUE(matches("mobilenet_v2 tf-same 64x64", y, f.at("y_tf").toTensor()));
  EXPECT_TRUE(matches("mobilenet_v2 tf-same 45x45", model->forward(f.at("x_odd").toTensor()),
                      f.at("y_odd_tf").toTensor()));
  // The padding matters: the symmetric model's output differs.
  EXPECT_FALSE(torch::allclose(y, f.at("y").toTensor(), 1e-3, 1e-3));
}

// ResNets: generated once per test binary by the script, into a temporary folder.
class FidelityResNet : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* python = "/usr/bin/python3";
    if (!fs::exists(python)) {
      skip_reason_ = "no /usr/bin/python3";
      return;
    }
    if (std::system("/usr/bin/python3 -c 'import torchvision' >/dev/null 2>&1") != 0) {
      skip_reason_ = "/usr/bin/python3 cannot import torchvision";
      return;
    }
    dir_ = fs::temp_directory_path() / ("normlab_model_fixtures_" + std::to_string(getpid()));
    const std::string cmd = std::string(python) + " '" +
                            (source_dir() / "scripts" / "gen_model_fixtures.py").string() +
                            "' --runtime '" + dir_.string() + "'";
    if (std::system(cmd.c_str()) != 0) generation_failed_ = "failed: " + cmd;
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  void check(const std::string& name) {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(generation_failed_.empty()) << generation_failed_;
    auto f = load_fixture(dir_ / (name + ".pt"));
    ASSERT_EQ(f.at("backbone").toStringRef(), name);
    Classifier model = model_for(f);
    ASSERT_TRUE(load_state_dict(*model, f.at("state_dict").toGenericDict()));
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(matches(name, model->forward(f.at("x").toTensor()), f.at("y").toTensor()));
  }

  static inline fs::path dir_;
  static inline std::string skip_reason_;
  static inline std::string generation_failed_;
};

TEST_F(FidelityResNet, Resnet18) { check("resnet18"); }
TEST_F(FidelityResNet, Resnet50) { check("resnet50"); }
TEST_F(FidelityResNet, Resnet18Cifar) { check("resnet18_cifar"); }
TEST_F(FidelityResNet, Resnet50Cifar) { check("resnet50_cifar"); }

}  // namespace
}  // namespace normlab::models
