// Loss landscapes around a run's weights.
//
// 2-D (Li et al., "Visualizing the Loss Landscape of Neural Nets", NeurIPS 2018):
// loss(theta + a*d1 + b*d2) on a grid of (a, b), with d1, d2 random Gaussian directions,
// filter-normalised (section 4: each filter of d is rescaled to the norm of the matching filter
// of theta). 1-d entries (biases, norm affine parameters, BN running statistics) get a zero
// direction with `ignore_biasbn` (their plot_surface.py's --xignore biasbn) and otherwise the
// entry itself (their normalize_directions_for_weights). Only the given tensors move, so S1's
// "head-only" landscape is a selection; over `states` the BN running statistics of the
// selected modules move too (Li et al.'s --dir_type states).
//
// 1-D (Goodfellow et al., "Qualitatively characterizing neural network optimization
// problems", ICLR 2015): loss((1 - t) theta_0 + t theta_1) along the line between two weight
// states, e.g. a run's initial and final weights, with or without the BN running statistics.
//
// Both evaluate in eval mode on fixed batches and restore every tensor afterwards. As probes
// ("landscape", "interpolation") they take their batches from the group's feature source at
// the stage of the lowest tensor that moves: with only the tail moving, the frozen prefix runs
// once per landscape, not once per grid point.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/batcher.h"
#include "models/model.h"
#include "store/records.h"
#include "train/observer.h"

namespace normlab::probe {

struct LandscapeOptions {
  int64_t resolution = 11;  // grid points per axis (odd keeps the centre on the grid)
  double span = 1.0;        // a, b in [-span, span]
  uint64_t seed = 0;        // direction draw
  bool ignore_biasbn = true;
  // A progress line "<label>: point k/n" on stderr while the grid is evaluated (a landscape
  // over many trainable stages takes minutes); "" = none.
  std::string progress_label;
};

// The two filter-normalised random directions drawn from `seed` for `tensors` (d1, d2).
std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> landscape_directions(
    const std::vector<torch::Tensor>& tensors, uint64_t seed, bool ignore_biasbn = true);

// Mean cross-entropy over `batches` whose x enters the model at `input_stage` (see
// ClassifierImpl::forward_from), in eval mode.
double mean_loss(models::ClassifierImpl& model, const std::vector<data::Batch>& batches,
                 int64_t input_stage);

// z[i][j] = loss(theta + x[j] d1 + y[i] d2), x = alpha (direction 1), y = beta (direction 2).
store::Surface loss_landscape(models::ClassifierImpl& model,
                              const std::vector<torch::Tensor>& tensors,
                              const std::vector<torch::Tensor>& d1,
                              const std::vector<torch::Tensor>& d2,
                              const std::vector<data::Batch>& batches, int64_t input_stage,
                              const LandscapeOptions& options);
// The same with the directions drawn by landscape_directions.
store::Surface loss_landscape(models::ClassifierImpl& model,
                              const std::vector<torch::Tensor>& tensors,
                              const std::vector<data::Batch>& batches, int64_t input_stage,
                              const LandscapeOptions& options);

// A 1-D curve as a one-row surface (y = {0}): z[0][j] = loss(tensors = (1 - x[j]) from +
// x[j] to), x evenly spaced over [lo, hi] with `points` values.
store::Surface interpolation_curve(models::ClassifierImpl& model,
                                   const std::vector<torch::Tensor>& tensors,
                                   const std::vector<torch::Tensor>& from,
                                   const std::vector<torch::Tensor>& to,
                                   const std::vector<data::Batch>& batches, int64_t input_stage,
                                   int64_t points, double lo, double hi);

// ---- what the landscape probes share ----

struct NamedTensor {
  std::string name;
  torch::Tensor tensor;
};

// The selected parameters (probe/selection.h option `params`), and with `states` the
// floating-point buffers (BN running statistics) of the modules that own them.
std::vector<NamedTensor> landscape_tensors(models::ClassifierImpl& model,
                                           const train::NamedParams& trainable,
                                           const nlohmann::json& params_option, bool states,
                                           const std::string& where);

// Fixed evaluation batches of `split` (val falls back to the unaugmented training images when
// the run has none), at most `max_batches` batches (0 = no limit) and `max_images` images
// (0 = no limit), entering the model at the lowest stage any of `tensors` belongs to (the
// stages below it that the engine's batches have not been through are run once, here).
struct LandscapeBatches {
  std::vector<data::Batch> batches;
  int64_t stage = 0;
};
LandscapeBatches landscape_batches(const train::EpochContext& ctx,
                                   const std::vector<NamedTensor>& tensors,
                                   const std::string& split, int64_t max_batches,
                                   int64_t max_images, const std::string& where);

}  // namespace normlab::probe
