// Geometry of the affine warp with chosen parameters, mixing draws and option checks. The
// Batcher-level tests (draws per sample, determinism, labels) are in batcher_test.cpp.
#include "data/augment.h"

#include <gtest/gtest.h>

#include "../io/test_files.h"

namespace normlab::data {
namespace {

namespace F = torch::nn::functional;
using testing::expect_error;

// The (1, 2, 3) matrix for one sample.
torch::Tensor theta_for(double degrees, double scale, double shift_x, double shift_y, int64_t h,
                        int64_t w) {
  return affine_theta(torch::tensor({degrees}, torch::kFloat64),
                      torch::tensor({scale}, torch::kFloat64),
                      torch::tensor({shift_x, shift_y}, torch::kFloat64).view({1, 2}), h, w);
}

// A (1, 1, h, w) image that is 0 except for 1 at (y, x).
torch::Tensor bright_pixel(int64_t h, int64_t w, int64_t y, int64_t x) {
  auto img = torch::zeros({1, 1, h, w});
  img[0][0][y][x] = 1.0f;
  return img;
}

// (row, col) of the largest value of a (1, 1, H, W) image, and that value.
std::tuple<int64_t, int64_t, float> peak(const torch::Tensor& img) {
  const int64_t w = img.size(3);
  const int64_t at = img.flatten().argmax().item<int64_t>();
  return {at / w, at % w, img.flatten()[at].item<float>()};
}

TEST(Augment, IdentityAffineIsThePlainPathAndFusesTheResize) {
  auto gen = at::detail::createCPUGenerator(4);
  auto x = torch::rand({3, 2, 8, 10}, gen);
  auto identity =
      affine_theta(torch::zeros({3}, torch::kFloat64), torch::ones({3}, torch::kFloat64),
                   torch::zeros({3, 2}, torch::kFloat64), 8, 10);
  EXPECT_TRUE(torch::allclose(
      identity[1], torch::tensor({1.0, 0.0, 0.0, 0.0, 1.0, 0.0}, torch::kFloat64).view({2, 3})));
  EXPECT_TRUE(torch::allclose(affine_warp(x, identity, 8, 10), x, 1e-5, 1e-6));
  // Sampling the identity grid at another size is bilinear interpolate (align_corners =
  // false, no antialiasing), upwards and downwards, non-square included.
  for (auto [oh, ow] : {std::pair<int64_t, int64_t>{12, 12}, {5, 7}, {16, 9}}) {
    auto expected = F::interpolate(x, F::InterpolateFuncOptions()
                                          .size(std::vector<int64_t>{oh, ow})
                                          .mode(torch::kBilinear)
                                          .align_corners(false));
    EXPECT_TRUE(torch::allclose(affine_warp(x, identity, oh, ow), expected, 1e-5, 1e-6))
        << oh << "x" << ow;
  }
}

TEST(Augment, QuarterTurnIsRot90CounterClockwise) {
  auto gen = at::detail::createCPUGenerator(5);
  auto x = torch::rand({1, 3, 9, 9}, gen);
  auto out = affine_warp(x, theta_for(90, 1, 0, 0, 9, 9), 9, 9);
  // torch::rot90(k = 1) over (H, W) turns counter-clockwise as displayed:
  // out[y][x] = in[x][W - 1 - y]. Pixel centres land on pixel centres, so every pixel matches;
  // the interior is what a wrong sign or grid would break first.
  auto ccw = torch::rot90(x, 1, {2, 3});
  auto interior = [](const torch::Tensor& t) { return t.slice(2, 1, -1).slice(3, 1, -1); };
  EXPECT_TRUE(torch::allclose(interior(out), interior(ccw), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(out, ccw, 1e-5, 1e-5));
  EXPECT_FALSE(torch::allclose(interior(out), interior(torch::rot90(x, -1, {2, 3})), 1e-2, 1e-2));
  EXPECT_FALSE(torch::allclose(interior(out), interior(x.transpose(2, 3)), 1e-2, 1e-2));
  // -90 is the clockwise turn, and 180 the point reflection.
  EXPECT_TRUE(torch::allclose(affine_warp(x, theta_for(-90, 1, 0, 0, 9, 9), 9, 9),
                              torch::rot90(x, -1, {2, 3}), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(affine_warp(x, theta_for(180, 1, 0, 0, 9, 9), 9, 9), x.flip({2, 3}),
                              1e-5, 1e-5));
}

TEST(Augment, RotationOfANonSquareImageWorksInPixels) {
  // 7 x 11, centre (3, 5). A pixel 2 to the right of the centre goes 2 up under +90 degrees
  // (in [-1, 1] coordinates it would go 2 * 7 / 11 up and smear).
  auto out = affine_warp(bright_pixel(7, 11, 3, 7), theta_for(90, 1, 0, 0, 7, 11), 7, 11);
  auto [y, x, v] = peak(out);
  EXPECT_EQ(y, 1);
  EXPECT_EQ(x, 5);
  EXPECT_NEAR(v, 1.0, 1e-5);
  EXPECT_NEAR(out.sum().item<float>(), 1.0, 1e-5);
}

TEST(Augment, ZoomAndShiftMoveABrightPixel) {
  // 9 x 11, centre (4, 5); the pixel sits at offset (+1, +1) from it.
  const auto src = bright_pixel(9, 11, 5, 6);
  {
    // scale 0.5 zooms in 2x: offset (+1, +1) -> (+2, +2).
    auto out = affine_warp(src, theta_for(0, 0.5, 0, 0, 9, 11), 9, 11);
    auto [y, x, v] = peak(out);
    EXPECT_EQ(y, 6);
    EXPECT_EQ(x, 7);
    EXPECT_NEAR(v, 1.0, 1e-5);
  }
  {
    // scale 2 zooms out 2x: offset (+2, +2) -> (+1, +1).
    auto out = affine_warp(bright_pixel(9, 11, 6, 7), theta_for(0, 2, 0, 0, 9, 11), 9, 11);
    auto [y, x, v] = peak(out);
    EXPECT_EQ(y, 5);
    EXPECT_EQ(x, 6);
    EXPECT_NEAR(v, 1.0, 1e-5);
  }
  {
    // shift (+2/11, -1/9) moves the content 2 pixels right and 1 up.
    auto out = affine_warp(src, theta_for(0, 1, 2.0 / 11, -1.0 / 9, 9, 11), 9, 11);
    auto [y, x, v] = peak(out);
    EXPECT_EQ(y, 4);
    EXPECT_EQ(x, 8);
    EXPECT_NEAR(v, 1.0, 1e-5);
    EXPECT_NEAR(out.sum().item<float>(), 1.0, 1e-5);
  }
  {
    // Half a pixel right: bilinear splits the pixel evenly.
    auto out = affine_warp(src, theta_for(0, 1, 0.5 / 11, 0, 9, 11), 9, 11);
    EXPECT_NEAR(out[0][0][5][6].item<float>(), 0.5, 1e-5);
    EXPECT_NEAR(out[0][0][5][7].item<float>(), 0.5, 1e-5);
  }
  {
    // Fused with a 2x upsampling to 18 x 22, the shift stays a fraction of the image: the
    // pixel (input centre offset +1, +1, then +2 right) covers output pixels around
    // (2 * 5.5 - 0.5, 2 * 8.5 - 0.5) = (10.5, 16.5).
    auto out = affine_warp(src, theta_for(0, 1, 2.0 / 11, 0, 9, 11), 18, 22);
    for (int64_t y : {10, 11}) {
      for (int64_t x : {16, 17}) EXPECT_NEAR(out[0][0][y][x].item<float>(), 0.5625, 1e-5);
    }
  }
}

TEST(Augment, OutsideTheImageRepeatsTheEdge) {
  // Keras fill_mode='nearest': shifting right by 3 fills the left columns with column 0.
  auto gen = at::detail::createCPUGenerator(6);
  auto x = torch::rand({1, 1, 5, 8}, gen);
  auto out = affine_warp(x, theta_for(0, 1, 3.0 / 8, 0, 5, 8), 5, 8);
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_TRUE(torch::allclose(out.select(3, c), x.select(3, 0), 1e-5, 1e-5));
  }
  EXPECT_TRUE(torch::allclose(out.slice(3, 3), x.slice(3, 0, 5), 1e-5, 1e-5));
}

TEST(Augment, MixingDrawsFollowTheirDefinitions) {
  AugmentOptions o;
  o.cutmix = 1.0;
  auto gen = at::detail::createCPUGenerator(7);
  auto d = draw_mixing(o, 512, 10, 12, gen);
  EXPECT_TRUE(d.use_cutmix.all().item<bool>());
  EXPECT_TRUE(torch::equal(std::get<0>(d.partner.sort()), torch::arange(512, torch::kInt64)));
  auto area = (d.boxes.select(1, 1) - d.boxes.select(1, 0)) *
              (d.boxes.select(1, 3) - d.boxes.select(1, 2));  // (B) pixels
  EXPECT_TRUE(
      torch::allclose(d.lam.to(torch::kFloat64), 1.0 - area.to(torch::kFloat64) / 120.0, 0, 1e-6));
  // Boxes are inside the image, and some are clipped at an edge.
  EXPECT_TRUE((d.boxes.select(1, 0) <= d.boxes.select(1, 1)).all().item<bool>());
  EXPECT_TRUE((d.boxes.min() >= 0).item<bool>());
  EXPECT_TRUE((d.boxes.select(1, 1) <= 10).all().item<bool>());
  EXPECT_TRUE((d.boxes.select(1, 3) <= 12).all().item<bool>());
  EXPECT_TRUE((d.boxes.select(1, 0) == 0).any().item<bool>());

  // Mixup lambdas are Beta(alpha, alpha): mean 1/2, variance 1 / (4 (2 alpha + 1)).
  for (double alpha : {0.2, 4.0}) {
    AugmentOptions m;
    m.mixup = alpha;
    auto lam = draw_mixing(m, 4096, 4, 4, gen).lam.to(torch::kFloat64);
    EXPECT_TRUE((lam >= 0).all().item<bool>() && (lam <= 1).all().item<bool>());
    EXPECT_NEAR(lam.mean().item<double>(), 0.5, 0.03) << alpha;
    const double var = 1.0 / (4.0 * (2.0 * alpha + 1.0));
    EXPECT_NEAR(lam.var().item<double>(), var, 0.15 * var) << alpha;
  }
}

TEST(Augment, FlipOnly) {
  AugmentOptions o;
  EXPECT_TRUE(flip_only(o));
  o.hflip = true;
  EXPECT_TRUE(flip_only(o));
  for (auto set : std::vector<void (*)(AugmentOptions&)>{
           [](AugmentOptions& a) { a.crop_padding = 2; }, [](AugmentOptions& a) { a.rotate = 5; },
           [](AugmentOptions& a) { a.zoom = 0.1; }, [](AugmentOptions& a) { a.shift = 0.1; },
           [](AugmentOptions& a) { a.mixup = 0.2; }, [](AugmentOptions& a) { a.cutmix = 1; }}) {
    AugmentOptions a;
    a.hflip = true;
    set(a);
    EXPECT_FALSE(flip_only(a));
  }
}

TEST(Augment, ValidationNamesTheKey) {
  auto with = [](void (*set)(AugmentOptions&)) {
    AugmentOptions o;
    set(o);
    return o;
  };
  EXPECT_NO_THROW(with([](AugmentOptions& o) {
                    o.rotate = 180;
                    o.zoom = 0.99;
                    o.shift = 0.5;
                    o.mixup = 0.2;
                    o.cutmix = 1;
                  }).validate());
  expect_error([&] { with([](AugmentOptions& o) { o.rotate = -1; }).validate(); },
               {"data.augment.rotate", "-1"});
  expect_error([&] { with([](AugmentOptions& o) { o.rotate = 200; }).validate(); },
               {"data.augment.rotate", "200", "[0, 180]"});
  expect_error([&] { with([](AugmentOptions& o) { o.zoom = 1; }).validate(); },
               {"data.augment.zoom", "[0, 1)"});
  expect_error([&] { with([](AugmentOptions& o) { o.zoom = -0.1; }).validate(); },
               {"data.augment.zoom", "-0.1"});
  expect_error([&] { with([](AugmentOptions& o) { o.shift = 1.5; }).validate(); },
               {"data.augment.shift", "1.5"});
  expect_error([&] { with([](AugmentOptions& o) { o.shift = std::nan(""); }).validate(); },
               {"data.augment.shift"});
  expect_error([&] { with([](AugmentOptions& o) { o.mixup = -0.2; }).validate(); },
               {"data.augment.mixup", "-0.2"});
  expect_error([&] { with([](AugmentOptions& o) { o.cutmix = -1; }).validate(); },
               {"data.augment.cutmix"});
  expect_error([&] { with([](AugmentOptions& o) { o.crop_padding = -4; }).validate(); },
               {"data.augment.crop_padding", "-4"});
}

}  // namespace
}  // namespace normlab::data
