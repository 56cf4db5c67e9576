// Batched data augmentation on normalised-to-[0,1] image batches that live on any device.
// Every random draw is taken on the CPU from a caller-owned generator, in a fixed order, and
// only the small parameter tensors move to the batch's device: the same generator state gives
// the same augmentation on CPU and CUDA, and every configuration of a lockstep group that
// shares the generator sees the same draws (common random numbers).
//
// Order inside one batch (the Batcher's): flip -> padded crop -> affine (rotate / zoom /
// shift, with the resize fused into the same grid_sample) -> normalise -> mixup / cutmix.
#pragma once

#include "core/option_fields.h"

#include <torch/torch.h>

#include <cstdint>

namespace normlab::data {

// Config keys are data.augment.<field>. Defaults are "off".
struct AugmentOptions {
  bool hflip = false;        // random horizontal flip with p = 0.5
  int64_t crop_padding = 0;  // padded random crop back to the input size (zero padding)
  // Affine part (S3's "standard" augmentation, after Keras' ImageDataGenerator). Pixels
  // sampled from outside the image repeat the nearest edge pixel (Keras fill_mode='nearest').
  double rotate = 0;  // max |degrees|, angle uniform in [-rotate, rotate]; positive turns the
                      // content counter-clockwise as displayed
  double zoom = 0;    // sampling scale s uniform in [1-zoom, 1+zoom], one per sample for both
                      // axes. Keras zoom_range semantics: an output pixel at offset u from the
                      // centre reads the input at s*u, so s < 1 zooms IN (content grows by 1/s)
                      // and s > 1 zooms OUT. (Keras draws s independently per axis.)
  double shift = 0;   // max fraction of width / height, uniform in [-shift, shift] per axis;
                      // positive moves the content right / down
  // Mixing, applied to the final normalised batch; each returns a partner label and a weight.
  double mixup = 0;   // Beta(alpha, alpha) alpha; 0 = off (Zhang et al. 2018, "mixup")
  double cutmix = 0;  // Beta(alpha, alpha) alpha; 0 = off (Yun et al. 2019, "CutMix")
  // When mixup and cutmix are both on, each sample uses one of them with p = 0.5.

  // Throws Error naming the key (data.augment.rotate, ...) for a value out of range: negative
  // values, rotate > 180, zoom >= 1, shift >= 1.
  void validate() const;
};

// True when the only augmentation is a horizontal flip (or there is none): every augmented
// view of an image is then the image or its mirror, so per-view features can be cached.
bool flip_only(const AugmentOptions& options);

// The fields of data.augment: their defaults are the struct's (core/option_fields.h).
void describe(AugmentOptions& o, OptionFields& f);
// True when rotate, zoom or shift is on.
bool affine_active(const AugmentOptions& options);
// True when mixup or cutmix is on.
bool mixing_active(const AugmentOptions& options);

// ---- Geometry with explicit parameters (the Batcher draws them; tests set them) ----

// The (B, 2, 3) float64 affine_grid matrices, on the parameters' device, for content that is
// zoomed by 1/scale, then rotated by `degrees` counter-clockwise, then moved by
// shift * (W, H) pixels, all about the image centre. In pixel units relative to the centre
// an output position u reads the input at  u_in = scale * R(degrees)^-1 * (u_out - t),
// worked in pixels (not in [-1, 1] coordinates) so a rotation of a non-square image stays
// a rotation. degrees, scale: (B); shift: (B, 2) as (x, y) fractions of (width, height).
torch::Tensor affine_theta(const torch::Tensor& degrees, const torch::Tensor& scale,
                           const torch::Tensor& shift, int64_t height, int64_t width);

// x: (B, C, H, W) float -> (B, C, out_h, out_w): one batched affine_grid + bilinear
// grid_sample (border padding, align_corners = false). Since theta works on the image extent,
// out_h x out_w != H x W also resizes; with the identity theta this equals bilinear
// F::interpolate(align_corners = false, no antialiasing).
torch::Tensor affine_warp(const torch::Tensor& x, const torch::Tensor& theta, int64_t out_h,
                          int64_t out_w);

// ---- Draw-and-apply steps, used by the Batcher ----

// x: (B, C, H, W) float in [0, 1] -> (B, C, R, R) with R = resize, or (B, C, H, W) when
// resize is 0: flip, padded crop, then the affine warp at the output size (or a plain
// bilinear resize when no affine part is on, interpolated as `filter` says). Draws from `gen`
// in that order, only for the parts that are on.
//
// ResizeFilter::kPil = PIL's bilinear on 8-bit images, rounding each pass to whole grey levels
// (data/pil_resize.h: torchvision's Resize on PIL images, the PyTorch seeds' pipeline);
// kFloat = bilinear interpolate without rounding (what tf.image.resize gives a Keras pipeline).
enum class ResizeFilter { kPil, kFloat };
torch::Tensor geometric_augment(const torch::Tensor& x, const AugmentOptions& options,
                                int64_t resize, torch::Generator& gen,
                                ResizeFilter filter = ResizeFilter::kFloat);

// One batch's mixing draws, on the CPU.
struct MixDraws {
  torch::Tensor partner;     // (B) int64: sample i is mixed with sample partner[i] of the batch
  torch::Tensor lam;         // (B) float32: weight of sample i's own image and label
  torch::Tensor use_cutmix;  // (B) bool: cutmix (box paste) rather than mixup (blend)
  torch::Tensor boxes;       // (B, 4) int64 (y1, y2, x1, x2), half-open; empty where unused
};

// Draws, in this order: the partner permutation, mixup's lambdas (if on), cutmix's lambdas
// and box centres (if on), the per-sample choice (if both are on). Cutmix lambdas are
// replaced by the exact kept-area fraction of the box after clipping to the image.
MixDraws draw_mixing(const AugmentOptions& options, int64_t batch, int64_t height, int64_t width,
                     torch::Generator& gen);

// x: (B, C, H, W) float -> same: x_i = lam_i x_i + (1 - lam_i) x_partner(i) for mixup
// samples; the box of a cutmix sample is pasted from its partner.
torch::Tensor apply_mixing(const torch::Tensor& x, const MixDraws& draws);

}  // namespace normlab::data
