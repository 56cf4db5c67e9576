// 2-D loss landscape around the trained weights (Li et al., "Visualizing the Loss Landscape
// of Neural Nets", NeurIPS 2018): loss(theta + a*d1 + b*d2) on a grid of (a, b), with d1, d2
// random Gaussian directions, filter-normalised (section 4: each filter of d is rescaled to
// the norm of the matching filter of theta; 1-d parameters such as biases and norm affine
// parameters get zero direction). Only the given parameters move, so S1's "head-only"
// landscape is a parameter selection. Weights are restored afterwards (WeightRestoreGuard).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/batcher.h"
#include "models/model.h"

namespace normlab::probe {

struct LandscapeOptions {
  int64_t resolution = 11;  // grid points per axis (odd keeps the centre on the grid)
  double span = 1.0;        // a, b in [-span, span]
  int64_t max_batches = 4;  // evaluation batches per grid point (fixed, unshuffled)
  uint64_t seed = 0;        // direction draw
};

struct Landscape {
  std::vector<double> alphas;
  std::vector<double> betas;
  std::vector<std::vector<double>> loss;  // [beta index][alpha index]
  nlohmann::json to_json() const;
};

// Over the first options.max_batches batches of `batcher`.
Landscape loss_landscape(models::Classifier& model, const std::vector<torch::Tensor>& params,
                         data::Batcher& batcher, const LandscapeOptions& options);
// Over given batches whose x enters the model at `input_stage` (see
// ClassifierImpl::forward_from): with a frozen prefix, the prefix runs once, not per grid point.
Landscape loss_landscape(models::Classifier& model, const std::vector<torch::Tensor>& params,
                         const std::vector<data::Batch>& batches, int64_t input_stage,
                         const LandscapeOptions& options);

}  // namespace normlab::probe
