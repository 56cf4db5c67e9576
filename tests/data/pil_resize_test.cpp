// data::pil_resize against PIL itself (scripts/gen_resize_fixtures.py): the same grey levels,
// exactly, upscaling as S0 does (32 -> 224), up and down by other factors, and one axis only.
#include "data/pil_resize.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "data/augment.h"

namespace normlab::data {
namespace {

namespace fs = std::filesystem;

c10::impl::GenericDict fixture() {
  const char* env = std::getenv("NORMLAB_FIXTURES");
  const fs::path dir =
      env ? fs::path(env) : fs::path(__FILE__).parent_path().parent_path() / "fixtures";
  std::ifstream in(dir / "data" / "pil_resize.pt", std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing tests/fixtures/data/pil_resize.pt";
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toGenericDict();
}

TEST(PilResize, EqualsPilGreyLevelForGreyLevel) {
  const auto f = fixture();
  for (const std::string name : {"cifar", "up", "down", "wide"}) {
    const torch::Tensor x = f.at("x_" + name).toTensor(), want = f.at("y_" + name).toTensor();
    torch::Tensor got =
        pil_bilinear_resize(x.to(torch::kFloat).div(255.0), want.size(2), want.size(3));
    torch::Tensor levels = got.mul(255.0).round().to(torch::kLong);
    EXPECT_EQ(levels.sizes(), want.sizes()) << name;
    const int64_t wrong = levels.ne(want.to(torch::kLong)).sum().item<int64_t>();
    EXPECT_EQ(wrong, 0) << name << ": " << wrong << " of " << want.numel()
                        << " grey levels differ from PIL's";
    // Whole grey levels, as the uint8 image ToTensor reads.
    EXPECT_TRUE(torch::equal(got, levels.to(torch::kFloat).div(255.0))) << name;
  }
}

TEST(PilResize, FloatFilterIsInterpolateAndDiffersFromPil) {
  const auto f = fixture();
  const torch::Tensor x = f.at("x_cifar").toTensor().to(torch::kFloat).div(255.0);
  torch::Generator gen = at::detail::createCPUGenerator(0);
  AugmentOptions none;
  none.hflip = false;
  torch::Tensor pil = geometric_augment(x, none, 224, gen, ResizeFilter::kPil);
  torch::Tensor flt = geometric_augment(x, none, 224, gen, ResizeFilter::kFloat);
  EXPECT_TRUE(torch::equal(pil, pil_bilinear_resize(x, 224, 224)));
  // The float path does not round: sub-grey-level differences, zero on average.
  const double mean_abs = (pil - flt).abs().mean().item<double>() * 255.0;
  EXPECT_GT(mean_abs, 0.1);
  EXPECT_LT(mean_abs, 0.5);
}

}  // namespace
}  // namespace normlab::data
