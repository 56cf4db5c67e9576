// make_norm against PyTorch's own layers: golden tensors from scripts/gen_nn_fixtures.py
// (tests/fixtures/nn/*.pt, torch.save of a dict, read with torch::pickle_load).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "nn/norm.h"

namespace normlab::nn {
namespace {

std::filesystem::path fixture_dir() {
  // ctest sets NORMLAB_FIXTURES; when the binary is run by hand, fall back to the source tree.
  if (const char* env = std::getenv("NORMLAB_FIXTURES")) return std::filesystem::path(env) / "nn";
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" / "nn";
}

c10::impl::GenericDict load_fixture(const std::string& name) {
  const auto path = fixture_dir() / (name + ".pt");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open fixture " + path.string());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toGenericDict();
}

class Fixture {
 public:
  explicit Fixture(const std::string& name) : dict_(load_fixture(name)) {}
  bool has(const std::string& key) const { return dict_.contains(key); }
  torch::Tensor tensor(const std::string& key) const { return dict_.at(key).toTensor(); }
  std::string text(const std::string& key) const { return dict_.at(key).toStringRef(); }
  double scalar(const std::string& key) const { return tensor(key).item<double>(); }

 private:
  c10::impl::GenericDict dict_;
};

// rtol = atol = 1e-5 (float32 values of order 1).
::testing::AssertionResult close(const torch::Tensor& got, const torch::Tensor& want) {
  if (!got.defined()) return ::testing::AssertionFailure() << "tensor undefined";
  if (got.sizes() != want.sizes()) {
    return ::testing::AssertionFailure() << "shape " << got.sizes() << " vs " << want.sizes();
  }
  if (torch::allclose(got, want, 1e-5, 1e-5)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "max |diff| = " << (got - want).abs().max().item<double>();
}

class NormParity : public ::testing::TestWithParam<std::string> {};

TEST_P(NormParity, MatchesPyTorch) {
  const Fixture f(GetParam());
  const NormOptions options{f.scalar("eps"), f.scalar("momentum")};
  const NormInput input = f.text("input_kind") == "vector" ? NormInput::kVector : NormInput::kMap;
  const torch::Tensor x0 = f.tensor("x");
  auto norm = make_norm(f.text("spec"), x0.size(1), input, options);
  auto module = norm.ptr();

  {
    torch::NoGradGuard no_grad;
    // Every parameter the layer has must come from the fixture (weight, bias).
    for (auto& p : module->named_parameters()) {
      ASSERT_TRUE(f.has(p.key())) << "fixture lacks parameter " << p.key();
      p.value().copy_(f.tensor(p.key()));
    }
    for (auto& b : module->named_buffers()) {
      if (f.has(b.key())) b.value().copy_(f.tensor(b.key()));
    }
  }
  module->train(f.scalar("train") != 0.0);

  auto x = x0.clone().requires_grad_(true);
  auto y = norm.forward(x);
  (y * f.tensor("grad_out")).sum().backward();

  EXPECT_TRUE(close(y, f.tensor("y"))) << "output";
  EXPECT_TRUE(close(x.grad(), f.tensor("grad_x"))) << "grad wrt input";
  for (auto& p : module->named_parameters()) {
    EXPECT_TRUE(close(p.value().grad(), f.tensor("grad_" + p.key()))) << "grad wrt " << p.key();
  }
  for (auto& b : module->named_buffers()) {
    if (f.has(b.key() + "_after")) {
      EXPECT_TRUE(close(b.value(), f.tensor(b.key() + "_after"))) << b.key() << " after forward";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, NormParity,
                         ::testing::Values("bn1d_train", "bn1d_eval", "bn2d_train", "bn2d_eval",
                                           "ln_vector", "ln_map", "gn2_map", "gn2_vector",
                                           "in_map"));

// Guards the fixture itself: BN in train mode must have moved its running statistics, or the
// "_after" comparison above would test nothing.
TEST(NormParityFixture, TrainModeFixturesMoveRunningStats) {
  for (const std::string name : {"bn1d_train", "bn2d_train"}) {
    const Fixture f(name);
    EXPECT_FALSE(torch::allclose(f.tensor("running_mean"), f.tensor("running_mean_after")));
    EXPECT_FALSE(torch::allclose(f.tensor("running_var"), f.tensor("running_var_after")));
  }
}

}  // namespace
}  // namespace normlab::nn
