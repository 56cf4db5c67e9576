#include "data/batcher.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <set>

#include "../io/test_files.h"

namespace normlab::data {
namespace {

using testing::expect_error;

// n random (n, c, hw, hw) images; label i = sample id i (so batches can be traced back).
Dataset random_dataset(int64_t n, int64_t c, int64_t hw, uint64_t seed = 0) {
  auto gen = at::detail::createCPUGenerator(seed);
  Dataset ds;
  ds.name = "random";
  ds.images = torch::randint(0, 256, {n, c, hw, hw}, gen, torch::kUInt8);
  ds.labels = torch::arange(n, torch::kInt64);
  ds.num_classes = n;
  for (int64_t i = 0; i < n; ++i) ds.class_names.push_back(std::to_string(i));
  return ds;
}

BatcherOptions plain_options(int64_t batch_size) {
  BatcherOptions o;
  o.batch_size = batch_size;
  o.shuffle = false;
  return o;
}

std::vector<Batch> epoch_batches(Batcher& batcher, int64_t epoch) {
  batcher.start_epoch(epoch);
  std::vector<Batch> out;
  Batch b;
  while (batcher.next(b)) out.push_back(b);
  return out;
}

// The original image of sample `id` as float in [0, 1]: (C, H, W).
torch::Tensor source_image(const Dataset& ds, int64_t id) {
  return ds.images[id].to(torch::kFloat32) / 255.0;
}

// Reference crop written the obvious way, one pixel at a time: zero padding p, window at
// (dy, dx) in the padded image. img: (C, H, W) -> (C, H, W).
torch::Tensor naive_crop(const torch::Tensor& img, int64_t p, int64_t dy, int64_t dx) {
  const int64_t c = img.size(0), h = img.size(1), w = img.size(2);
  auto out = torch::zeros_like(img);
  auto src = img.accessor<float, 3>();
  auto dst = out.accessor<float, 3>();
  for (int64_t k = 0; k < c; ++k) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const int64_t sy = y + dy - p, sx = x + dx - p;
        if (sy >= 0 && sy < h && sx >= 0 && sx < w) dst[k][y][x] = src[k][sy][sx];
      }
    }
  }
  return out;
}

TEST(Batcher, ShapesAndPartialLastBatch) {
  auto ds = random_dataset(10, 3, 8);
  Batcher batcher(ds, plain_options(4), 0);
  EXPECT_EQ(batcher.batches_per_epoch(), 3);
  EXPECT_EQ(batcher.size(), 10);
  auto batches = epoch_batches(batcher, 0);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].x.sizes(), torch::IntArrayRef({4, 3, 8, 8}));
  EXPECT_EQ(batches[0].x.scalar_type(), torch::kFloat32);
  EXPECT_EQ(batches[0].y.sizes(), torch::IntArrayRef({4}));
  EXPECT_EQ(batches[0].y.scalar_type(), torch::kInt64);
  EXPECT_EQ(batches[2].x.size(0), 2);
  // No shuffle, no augmentation, no normalisation: the pixels / 255 in dataset order.
  EXPECT_TRUE(torch::equal(batches[2].y, torch::tensor({8, 9}, torch::kInt64)));
  EXPECT_TRUE(torch::allclose(batches[1].x, ds.images.slice(0, 4, 8).to(torch::kFloat32) / 255.0));
}

TEST(Batcher, DropLastSkipsPartialBatch) {
  auto ds = random_dataset(10, 1, 4);
  auto options = plain_options(4);
  options.drop_last = true;
  options.shuffle = true;
  Batcher batcher(ds, options, 3);
  EXPECT_EQ(batcher.batches_per_epoch(), 2);
  auto batches = epoch_batches(batcher, 0);
  ASSERT_EQ(batches.size(), 2u);
  for (const auto& b : batches) EXPECT_EQ(b.x.size(0), 4);
  Batch extra;
  EXPECT_FALSE(batcher.next(extra));  // stays at the end
}

TEST(Batcher, EverySampleOncePerEpochInShuffledOrder) {
  auto ds = random_dataset(101, 1, 4);
  auto options = plain_options(16);
  options.shuffle = true;
  Batcher batcher(ds, options, 5);
  for (int64_t epoch : {0, 1}) {
    std::vector<torch::Tensor> ys;
    for (auto& b : epoch_batches(batcher, epoch)) ys.push_back(b.y);
    auto order = torch::cat(ys);
    EXPECT_FALSE(torch::equal(order, torch::arange(101, torch::kInt64))) << "not shuffled";
    EXPECT_TRUE(torch::equal(std::get<0>(order.sort()), torch::arange(101, torch::kInt64)));
  }
}

TEST(Batcher, SameSeedAndEpochGiveSameBatchesDifferentEpochsDiffer) {
  auto ds = random_dataset(40, 3, 6);
  BatcherOptions options;
  options.batch_size = 8;
  options.augment.hflip = true;
  options.augment.crop_padding = 2;
  options.mean = {0.5, 0.4, 0.3};
  options.stddev = {0.2, 0.25, 0.3};
  Batcher a(ds, options, 42);
  Batcher b(ds, options, 42);
  // b jumps straight to epoch 2, as a resumed run would; a goes through 0 and 1 first.
  auto a0 = epoch_batches(a, 0);
  epoch_batches(a, 1);
  auto a2 = epoch_batches(a, 2);
  auto b2 = epoch_batches(b, 2);
  ASSERT_EQ(a2.size(), b2.size());
  for (size_t i = 0; i < a2.size(); ++i) {
    EXPECT_TRUE(torch::equal(a2[i].x, b2[i].x)) << "batch " << i;
    EXPECT_TRUE(torch::equal(a2[i].y, b2[i].y)) << "batch " << i;
  }
  EXPECT_FALSE(torch::equal(a0[0].y, a2[0].y));
  // A different seed gives a different order.
  Batcher d(ds, options, 43);
  auto d2 = epoch_batches(d, 2);
  EXPECT_FALSE(torch::equal(torch::cat({a2[0].y, a2[1].y}), torch::cat({d2[0].y, d2[1].y})));
  // Without shuffling the order repeats, but the augmentation draws still change per epoch.
  options.shuffle = false;
  Batcher c(ds, options, 42);
  auto c0 = epoch_batches(c, 0);
  auto c1 = epoch_batches(c, 1);
  EXPECT_TRUE(torch::equal(c0[0].y, c1[0].y));
  EXPECT_FALSE(torch::equal(c0[0].x, c1[0].x));
}

TEST(Batcher, NormalisesPerChannelExactly) {
  Dataset ds;
  ds.name = "hand-made";
  // One 3-channel 2x2 image, channel k holds {0, 51, 128, 255} shifted by k.
  ds.images = torch::tensor({0, 51, 128, 255, 1, 52, 129, 254, 2, 53, 130, 253}, torch::kUInt8)
                  .view({1, 3, 2, 2});
  ds.labels = torch::zeros({1}, torch::kInt64);
  ds.num_classes = 1;
  ds.class_names = {"only"};
  auto options = plain_options(1);
  options.mean = {0.5, 0.25, 0.1};
  options.stddev = {0.5, 0.2, 0.3};
  Batcher batcher(ds, options, 0);
  Batch b;
  ASSERT_TRUE(batcher.next(b));
  for (int64_t k = 0; k < 3; ++k) {
    for (int64_t y = 0; y < 2; ++y) {
      for (int64_t x = 0; x < 2; ++x) {
        const double v = ds.images[0][k][y][x].item<double>();
        const double expected = (v / 255.0 - options.mean[static_cast<size_t>(k)]) /
                                options.stddev[static_cast<size_t>(k)];
        // Float32 rounding of v / 255 is about 3e-8; a wrong channel's mean or stddev is
        // off by more than 1e-2.
        EXPECT_NEAR(b.x[0][k][y][x].item<float>(), expected, 1e-6)
            << "channel " << k << " pixel " << y << "," << x;
      }
    }
  }
}

TEST(Batcher, RefusesMismatchedNormalisation) {
  auto ds = random_dataset(4, 3, 4);
  auto options = plain_options(2);
  options.mean = {0.5};
  options.stddev = {0.5};
  expect_error([&] { Batcher(ds, options, 0); }, {"1 channels but the images have 3"});
  options.mean = {0.5, 0.5, 0.5};
  expect_error([&] { Batcher(ds, options, 0); }, {"3 mean values but 1 stddev"});
  options.stddev = {0.5, 0.0, 0.5};
  expect_error([&] { Batcher(ds, options, 0); }, {"positive"});
  options = plain_options(0);
  expect_error([&] { Batcher(ds, options, 0); }, {"batch_size"});
}

TEST(Batcher, HorizontalFlipFlipsAboutHalfTheSamples) {
  auto ds = random_dataset(32, 2, 6);
  auto options = plain_options(32);
  options.augment.hflip = true;
  Batcher batcher(ds, options, 9);
  int64_t flipped = 0, total = 0;
  for (int64_t epoch = 0; epoch < 10; ++epoch) {
    auto batches = epoch_batches(batcher, epoch);
    ASSERT_EQ(batches.size(), 1u);
    int64_t flipped_here = 0;
    for (int64_t i = 0; i < 32; ++i) {
      auto out = batches[0].x[i];
      auto src = source_image(ds, batches[0].y[i].item<int64_t>());
      const bool same = torch::equal(out, src);
      const bool mirrored = torch::equal(out, src.flip({2}));
      EXPECT_TRUE(same != mirrored) << "sample " << i << " is neither the image nor its mirror";
      flipped_here += mirrored ? 1 : 0;
    }
    EXPECT_GT(flipped_here, 0);
    EXPECT_LT(flipped_here, 32);
    flipped += flipped_here;
    total += 32;
  }
  const double rate = static_cast<double>(flipped) / static_cast<double>(total);
  EXPECT_GT(rate, 0.4);
  EXPECT_LT(rate, 0.6);
}

TEST(Batcher, PaddedCropMatchesNaiveCropAndCoversEveryOffset) {
  const int64_t p = 2;
  auto ds = random_dataset(32, 3, 7);  // non-square-friendly odd size on purpose
  auto options = plain_options(32);
  options.augment.crop_padding = p;
  Batcher batcher(ds, options, 1);
  std::set<std::pair<int64_t, int64_t>> seen;
  for (int64_t epoch = 0; epoch < 10; ++epoch) {
    auto batch = epoch_batches(batcher, epoch).at(0);
    EXPECT_EQ(batch.x.sizes(), torch::IntArrayRef({32, 3, 7, 7}));
    for (int64_t i = 0; i < 32; ++i) {
      auto src = source_image(ds, batch.y[i].item<int64_t>());
      int matches = 0;
      for (int64_t dy = 0; dy <= 2 * p; ++dy) {
        for (int64_t dx = 0; dx <= 2 * p; ++dx) {
          if (torch::equal(batch.x[i], naive_crop(src, p, dy, dx))) {
            ++matches;
            seen.insert({dy, dx});
          }
        }
      }
      EXPECT_EQ(matches, 1) << "epoch " << epoch << " sample " << i;
    }
  }
  // 320 draws over 25 offsets: every offset in [0, 2p]^2, corners included, shows up.
  EXPECT_EQ(seen.size(), 25u);
}

TEST(Batcher, FlipAndCropCombine) {
  const int64_t p = 1;
  auto ds = random_dataset(16, 1, 5);
  auto options = plain_options(16);
  options.augment.hflip = true;
  options.augment.crop_padding = p;
  Batcher batcher(ds, options, 2);
  auto batch = epoch_batches(batcher, 0).at(0);
  for (int64_t i = 0; i < 16; ++i) {
    auto src = source_image(ds, batch.y[i].item<int64_t>());
    bool found = false;
    for (const auto& img : {src, src.flip({2}).contiguous()}) {
      for (int64_t dy = 0; dy <= 2 * p; ++dy) {
        for (int64_t dx = 0; dx <= 2 * p; ++dx) {
          found = found || torch::equal(batch.x[i], naive_crop(img, p, dy, dx));
        }
      }
    }
    EXPECT_TRUE(found) << "sample " << i;
  }
}

TEST(Batcher, ResizeIsBilinearWithoutAlignCorners) {
  auto ds = random_dataset(6, 3, 8);
  auto options = plain_options(6);
  options.resize = 12;
  Batcher batcher(ds, options, 0);
  auto batch = epoch_batches(batcher, 0).at(0);
  EXPECT_EQ(batch.x.sizes(), torch::IntArrayRef({6, 3, 12, 12}));
  namespace F = torch::nn::functional;
  auto expected =
      F::interpolate(ds.images.to(torch::kFloat32) / 255.0, F::InterpolateFuncOptions()
                                                                .size(std::vector<int64_t>{12, 12})
                                                                .mode(torch::kBilinear)
                                                                .align_corners(false));
  EXPECT_TRUE(torch::allclose(batch.x, expected, 1e-6, 1e-6));
}

TEST(Batcher, NearIdentityAffineMatchesThePlainPathWithAndWithoutResize) {
  // rotate 1e-9 degrees keeps the affine path on while its draws are the identity up to
  // float rounding, so the fused warp must reproduce the plain (interpolate) path.
  auto ds = random_dataset(6, 3, 8);
  for (int64_t resize : {0, 12, 5}) {
    auto plain = plain_options(6);
    plain.resize = resize;
    plain.mean = {0.5, 0.4, 0.3};
    plain.stddev = {0.2, 0.25, 0.3};
    auto affine = plain;
    affine.augment.rotate = 1e-9;
    Batcher a(ds, plain, 0);
    Batcher b(ds, affine, 0);
    auto pa = epoch_batches(a, 0).at(0);
    auto pb = epoch_batches(b, 0).at(0);
    EXPECT_EQ(pa.x.sizes(), pb.x.sizes());
    EXPECT_TRUE(torch::allclose(pa.x, pb.x, 1e-5, 1e-5)) << "resize " << resize;
  }
}

// n images 1 x 15 x 15, zero except one bright pixel at offset (dy, dx) from the centre (7, 7).
Dataset bright_pixel_dataset(int64_t n, int64_t dy, int64_t dx) {
  Dataset ds;
  ds.name = "bright-pixel";
  ds.images = torch::zeros({n, 1, 15, 15}, torch::kUInt8);
  ds.images.select(2, 7 + dy).select(2, 7 + dx).fill_(255);
  ds.labels = torch::zeros({n}, torch::kInt64);
  ds.num_classes = 1;
  ds.class_names = {"dot"};
  return ds;
}

// Centroid offset from the centre of each (1, 15, 15) image of x: (B, 2) as (y, x) pixels.
torch::Tensor centroids(const torch::Tensor& x) {
  auto coords = torch::arange(15, torch::kFloat32) - 7;
  auto mass = x.sum({1, 2, 3});
  auto cy = (x.sum({1, 3}) * coords).sum(1) / mass;
  auto cx = (x.sum({1, 2}) * coords).sum(1) / mass;
  return torch::stack({cy, cx}, 1);
}

TEST(Batcher, AffineDrawsArePerSampleAndStayInTheirRanges) {
  const int64_t n = 64;
  auto run = [&](const Dataset& ds, void (*set)(AugmentOptions&)) {
    auto options = plain_options(n);
    set(options.augment);
    Batcher batcher(ds, options, 11);
    return epoch_batches(batcher, 0).at(0).x;
  };
  {
    // Shift 0.2 of 15 pixels: the centroid of a bilinear-shifted point moves exactly by the
    // shift, up to 3 pixels each way, and the draws differ per sample and per axis.
    auto c =
        centroids(run(bright_pixel_dataset(n, 0, 0), [](AugmentOptions& a) { a.shift = 0.2; }));
    EXPECT_LE(c.abs().max().item<float>(), 3.0f + 1e-4f);
    EXPECT_GT(c.select(1, 0).max().item<float>(), 1.5f);
    EXPECT_LT(c.select(1, 1).min().item<float>(), -1.5f);
    EXPECT_FALSE(torch::allclose(c.select(1, 0), c.select(1, 1)));
  }
  {
    // Rotation up to 20 degrees of a point 5 pixels right of the centre: the point stays at
    // radius ~5 and turns by at most ~20 degrees either way (bilinear blurs it slightly).
    auto c =
        centroids(run(bright_pixel_dataset(n, 0, 5), [](AugmentOptions& a) { a.rotate = 20; }));
    auto degrees = torch::atan2(-c.select(1, 0), c.select(1, 1)) * (180.0 / M_PI);  // ccw
    auto radius = c.norm(2, 1);
    EXPECT_LE(degrees.abs().max().item<float>(), 21.0f);
    EXPECT_GT(degrees.max().item<float>(), 10.0f);
    EXPECT_LT(degrees.min().item<float>(), -10.0f);
    EXPECT_NEAR(radius.mean().item<float>(), 5.0f, 0.2f);
  }
  {
    // Zoom 0.2: the sampling scale is in [0.8, 1.2], so a point at radius 4 lands at radius
    // 4 / scale in [3.33, 5]; the centroid of a bilinear-resampled point is off by up to
    // ~0.2 pixel when the grid is scaled (e.g. 3.25 for scale 1.2).
    auto c = centroids(run(bright_pixel_dataset(n, 0, 4), [](AugmentOptions& a) { a.zoom = 0.2; }));
    auto radius = c.select(1, 1);
    EXPECT_TRUE(torch::allclose(c.select(1, 0), torch::zeros({n}), 0, 1e-4));
    EXPECT_GE(radius.min().item<float>(), 4.0f / 1.2f - 0.25f);
    EXPECT_LE(radius.max().item<float>(), 4.0f / 0.8f + 0.25f);
    EXPECT_GT(radius.max().item<float>() - radius.min().item<float>(), 1.0f);
  }
}

TEST(Batcher, FullAugmentationIsAPureFunctionOfSeedAndEpoch) {
  auto ds = random_dataset(40, 3, 8);
  BatcherOptions options;
  options.batch_size = 16;
  options.resize = 10;
  options.augment.hflip = true;
  options.augment.crop_padding = 1;
  options.augment.rotate = 20;
  options.augment.zoom = 0.1;
  options.augment.shift = 0.1;
  options.augment.mixup = 0.4;
  options.augment.cutmix = 1.0;
  options.mean = {0.5, 0.4, 0.3};
  options.stddev = {0.2, 0.25, 0.3};
  Batcher a(ds, options, 42);
  Batcher b(ds, options, 42);
  auto a0 = epoch_batches(a, 0);
  epoch_batches(a, 1);
  auto a2 = epoch_batches(a, 2);
  auto b2 = epoch_batches(b, 2);  // straight to epoch 2, as a resumed run
  ASSERT_EQ(a2.size(), 3u);
  ASSERT_EQ(b2.size(), 3u);
  for (size_t i = 0; i < a2.size(); ++i) {
    EXPECT_EQ(a2[i].x.sizes(), torch::IntArrayRef({a2[i].y.size(0), 3, 10, 10}));
    EXPECT_TRUE(torch::equal(a2[i].x, b2[i].x)) << "batch " << i;
    EXPECT_TRUE(torch::equal(a2[i].y, b2[i].y)) << "batch " << i;
    EXPECT_TRUE(torch::equal(a2[i].y2, b2[i].y2)) << "batch " << i;
    EXPECT_TRUE(torch::equal(a2[i].lam, b2[i].lam)) << "batch " << i;
  }
  EXPECT_FALSE(torch::equal(a0[0].x, a2[0].x));
  EXPECT_FALSE(torch::equal(a0[0].lam, a2[0].lam));
  // Without shuffling the order repeats, but every draw still changes with the epoch.
  options.shuffle = false;
  Batcher c(ds, options, 42);
  auto c0 = epoch_batches(c, 0);
  auto c1 = epoch_batches(c, 1);
  EXPECT_TRUE(torch::equal(c0[0].y, c1[0].y));
  EXPECT_FALSE(torch::equal(c0[0].x, c1[0].x));
  EXPECT_FALSE(torch::equal(c0[0].y2, c1[0].y2));
}

// The normalised image of sample `id`, as the batcher makes it without augmentation.
torch::Tensor normalised_image(const Dataset& ds, int64_t id, const BatcherOptions& o) {
  auto mean = torch::tensor(o.mean, torch::kFloat32).view({-1, 1, 1});
  auto stddev = torch::tensor(o.stddev, torch::kFloat32).view({-1, 1, 1});
  return (source_image(ds, id) - mean) / stddev;
}

TEST(Batcher, MixupBlendsEachSampleWithItsPartner) {
  auto ds = random_dataset(24, 3, 5);
  auto options = plain_options(12);
  options.shuffle = true;
  options.augment.mixup = 0.4;
  options.mean = {0.5, 0.4, 0.3};
  options.stddev = {0.2, 0.25, 0.3};
  Batcher batcher(ds, options, 8);
  for (const auto& batch : epoch_batches(batcher, 0)) {
    ASSERT_TRUE(batch.y2.defined() && batch.lam.defined());
    EXPECT_EQ(batch.y2.scalar_type(), torch::kInt64);
    EXPECT_EQ(batch.lam.scalar_type(), torch::kFloat32);
    EXPECT_EQ(batch.lam.sizes(), torch::IntArrayRef({12}));
    // The partners are a permutation of the batch.
    EXPECT_TRUE(torch::equal(std::get<0>(batch.y2.sort()), std::get<0>(batch.y.sort())));
    EXPECT_GT(batch.lam.max().item<float>() - batch.lam.min().item<float>(), 0.1f);
    for (int64_t i = 0; i < 12; ++i) {
      const float lam = batch.lam[i].item<float>();
      EXPECT_GE(lam, 0.0f);
      EXPECT_LE(lam, 1.0f);
      auto expected = lam * normalised_image(ds, batch.y[i].item<int64_t>(), options) +
                      (1 - lam) * normalised_image(ds, batch.y2[i].item<int64_t>(), options);
      EXPECT_TRUE(torch::allclose(batch.x[i], expected, 1e-5, 1e-5)) << "sample " << i;
    }
  }
}

// The pixels of sample i that come from its partner: a (H, W) bool mask. Every pixel must
// come from the sample itself or its partner.
torch::Tensor pasted_mask(const Batch& batch, int64_t i, const Dataset& ds) {
  auto out = batch.x[i];
  auto own = (out == source_image(ds, batch.y[i].item<int64_t>())).all(0);
  auto other = (out == source_image(ds, batch.y2[i].item<int64_t>())).all(0);
  EXPECT_TRUE((own | other).all().item<bool>()) << "sample " << i;
  return other & ~own;
}

TEST(Batcher, CutmixPastesABoxFromThePartnerAndLamIsTheKeptArea) {
  auto ds = random_dataset(32, 3, 12);
  auto options = plain_options(32);
  options.shuffle = true;
  options.augment.cutmix = 1.0;
  Batcher batcher(ds, options, 3);
  int64_t checked = 0, clipped = 0;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    auto batch = epoch_batches(batcher, epoch).at(0);
    for (int64_t i = 0; i < 32; ++i) {
      if (batch.y[i].item<int64_t>() == batch.y2[i].item<int64_t>()) continue;  // own partner
      auto mask = pasted_mask(batch, i, ds);
      const int64_t area = mask.sum().item<int64_t>();
      EXPECT_NEAR(batch.lam[i].item<float>(), 1.0 - static_cast<double>(area) / 144.0, 1e-6)
          << "sample " << i;
      if (area == 0) continue;
      // The pasted pixels fill their bounding box: a rectangle.
      auto rows = mask.any(1).nonzero().flatten();
      auto cols = mask.any(0).nonzero().flatten();
      const int64_t y1 = rows.min().item<int64_t>(), y2 = rows.max().item<int64_t>() + 1;
      const int64_t x1 = cols.min().item<int64_t>(), x2 = cols.max().item<int64_t>() + 1;
      EXPECT_EQ(area, (y2 - y1) * (x2 - x1)) << "sample " << i;
      clipped += (y1 == 0 || x1 == 0 || y2 == 12 || x2 == 12) ? 1 : 0;
      ++checked;
    }
  }
  EXPECT_GT(checked, 60);
  EXPECT_GT(clipped, 0);
  EXPECT_LT(clipped, checked);
}

TEST(Batcher, MixupAndCutmixTogetherPickOnePerSample) {
  auto ds = random_dataset(64, 3, 6);
  auto options = plain_options(64);
  options.shuffle = true;
  options.augment.mixup = 1.0;
  options.augment.cutmix = 1.0;
  Batcher batcher(ds, options, 5);
  auto batch = epoch_batches(batcher, 0).at(0);
  int64_t cut = 0, mixed = 0;
  for (int64_t i = 0; i < 64; ++i) {
    if (batch.y[i].item<int64_t>() == batch.y2[i].item<int64_t>()) continue;
    auto out = batch.x[i];
    auto own = source_image(ds, batch.y[i].item<int64_t>());
    auto other = source_image(ds, batch.y2[i].item<int64_t>());
    if (((out == own) | (out == other)).all().item<bool>()) {
      ++cut;
    } else {
      const float lam = batch.lam[i].item<float>();
      EXPECT_TRUE(torch::allclose(out, lam * own + (1 - lam) * other, 1e-5, 1e-5));
      ++mixed;
    }
  }
  EXPECT_GT(cut, 15);
  EXPECT_GT(mixed, 15);
}

TEST(Batcher, NoMixingLeavesY2AndLamUndefined) {
  auto ds = random_dataset(8, 1, 4);
  auto options = plain_options(4);
  options.augment.cutmix = 1.0;
  Batcher mixing(ds, options, 0);
  Batch batch;
  ASSERT_TRUE(mixing.next(batch));
  EXPECT_TRUE(batch.y2.defined());
  // The same Batch refilled by a batcher without mixing (alpha 0) loses y2 and lam.
  options.augment.cutmix = 0;
  options.augment.mixup = 0;
  options.augment.rotate = 10;
  Batcher plain(ds, options, 0);
  ASSERT_TRUE(plain.next(batch));
  EXPECT_FALSE(batch.y2.defined());
  EXPECT_FALSE(batch.lam.defined());
}

TEST(Batcher, RefusesOutOfRangeAugmentation) {
  auto ds = random_dataset(4, 1, 4);
  auto options = plain_options(2);
  options.augment.rotate = 181;
  expect_error([&] { Batcher(ds, options, 0); }, {"data.augment.rotate", "181"});
  options.augment.rotate = 0;
  options.augment.zoom = 1;
  expect_error([&] { Batcher(ds, options, 0); }, {"data.augment.zoom"});
}

TEST(Batcher, EpochSeedIsAPureFunctionThatSeparatesEpochs) {
  EXPECT_EQ(epoch_seed(1, 2), epoch_seed(1, 2));
  std::set<uint32_t> low_bits;  // the CPU generator keeps 32 bits of its seed
  for (uint64_t seed = 0; seed < 10; ++seed) {
    for (int64_t epoch = 0; epoch < 100; ++epoch) {
      low_bits.insert(static_cast<uint32_t>(epoch_seed(seed, epoch)));
    }
  }
  EXPECT_EQ(low_bits.size(), 1000u);
}

TEST(NormalizePreset, KnownValuesAndErrors) {
  auto cifar = normalize_preset("cifar");
  EXPECT_EQ(cifar.mean, (std::vector<double>{0.4914, 0.4822, 0.4465}));
  EXPECT_EQ(cifar.stddev, (std::vector<double>{0.2023, 0.1994, 0.2010}));
  EXPECT_EQ(normalize_preset("imagenet").mean, (std::vector<double>{0.485, 0.456, 0.406}));
  EXPECT_EQ(normalize_preset("mnist").mean, (std::vector<double>{0.1307}));
  EXPECT_EQ(normalize_preset("fashion-mnist").stddev, (std::vector<double>{0.3530}));
  EXPECT_TRUE(normalize_preset("none").mean.empty());
  for (const auto& name : normalize_preset_names()) EXPECT_NO_THROW(normalize_preset(name));
  expect_error([&] { normalize_preset("cifar10"); },
               {"'cifar10'", "cifar, imagenet, mnist, fashion-mnist, minus-one-one, tf-128, none"});
  // Channel-aware overload.
  EXPECT_EQ(normalize_preset("minus-one-one", 3).mean, (std::vector<double>{0.5, 0.5, 0.5}));
  // (pixel - 128) / 128 as TFLite MobileNets expect: pixel 0 -> -1, pixel 255 -> 127/128.
  auto tf = normalize_preset("tf-128", 3);
  EXPECT_NEAR((0.0 - tf.mean[2]) / tf.stddev[2], -1.0, 1e-12);
  EXPECT_NEAR((1.0 - tf.mean[0]) / tf.stddev[0], 127.0 / 128.0, 1e-12);
  EXPECT_EQ(normalize_preset("cifar", 3).mean.size(), 3u);
  EXPECT_TRUE(normalize_preset("none", 3).mean.empty());
  expect_error([&] { normalize_preset("mnist", 3); }, {"'mnist'", "1-channel"});
}

// Not a benchmark gate: prints images/s for the configuration in the brief (batch 64, 28x28,
// crop padding 4 + flip, normalise) at 1 and 2 threads, so regressions show in the log.
TEST(Batcher, ReportsThroughput) {
  auto ds = random_dataset(2048, 1, 28);
  ds.labels = ds.labels.remainder(10);
  ds.num_classes = 10;
  ds.class_names.resize(10);
  BatcherOptions options;
  options.batch_size = 64;
  options.augment.hflip = true;
  options.augment.crop_padding = 4;
  options.mean = {0.2860};
  options.stddev = {0.3530};
  Batcher batcher(ds, options, 0);
  const int previous_threads = torch::get_num_threads();
  for (int threads : {1, 2}) {
    torch::set_num_threads(threads);
    epoch_batches(batcher, 0);  // warm-up
    const auto start = std::chrono::steady_clock::now();
    int64_t images = 0;
    for (int64_t epoch = 1; epoch <= 2; ++epoch) {
      for (const auto& b : epoch_batches(batcher, epoch)) images += b.x.size(0);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "[batcher] " << static_cast<int64_t>(static_cast<double>(images) / seconds)
              << " images/s (batch 64, 1x28x28, flip + crop pad 4, normalise, " << threads
              << " threads)\n";
    EXPECT_EQ(images, 2 * 2048);
  }
  torch::set_num_threads(previous_threads);
}

}  // namespace
}  // namespace normlab::data
