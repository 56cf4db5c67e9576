// 2-D loss landscape around the trained weights (Li et al., "Visualizing the Loss Landscape
// of Neural Nets", NeurIPS 2018): loss(theta + a*d1 + b*d2) on a grid of (a, b), with d1, d2
// random Gaussian directions, filter-normalised (section 4: each filter of d is rescaled to
// the norm of the matching filter of theta; 1-d parameters such as biases and norm affine
// parameters get zero direction). Only the given parameters move, so S1's "head-only"
// landscape is a parameter selection. Weights are restored afterwards (WeightRestoreGuard).
// As a probe ("landscape", registry.h) it runs at the end of a run on fixed batches of a
// split from the group's feature source: with only tail parameters moving, the frozen prefix
// runs once, not once per grid point.
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

namespace normlab::probe {

struct LandscapeOptions {
  int64_t resolution = 11;  // grid points per axis (odd keeps the centre on the grid)
  double span = 1.0;        // a, b in [-span, span]
  int64_t max_batches = 4;  // evaluation batches per grid point (fixed, unshuffled)
  uint64_t seed = 0;        // direction draw
};

// The two filter-normalised random directions drawn from `seed` for `params` (d1, d2).
std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> landscape_directions(
    const std::vector<torch::Tensor>& params, uint64_t seed);

// Over given batches whose x enters the model at `input_stage` (see
// ClassifierImpl::forward_from). The result has x = alpha (direction 1), y = beta
// (direction 2) and z[i][j] = loss(theta + x[j] d1 + y[i] d2).
store::Surface loss_landscape(models::ClassifierImpl& model,
                              const std::vector<torch::Tensor>& params,
                              const std::vector<data::Batch>& batches, int64_t input_stage,
                              const LandscapeOptions& options);

}  // namespace normlab::probe
