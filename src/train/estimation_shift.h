// Estimation shift (Huang et al., "Delving into the Estimation Shift of Batch Normalization in
// a Network", CVPR 2022; seed 004 definition 2): how far a BatchNorm layer's running estimates
// are from the statistics of the input it really sees on an evaluation split,
//   ESM_mu    = ||mu_running - mu_population||_2
//   ESM_sigma = ||sqrt(var_running) - sqrt(var_population)||_2
// Population statistics come from one forward pass over the split under the current weights
// (models::measure_population), through the engine's evaluation batches.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/population_stats.h"
#include "train/observer.h"

namespace normlab::train {

// The statistics of every running-statistics norm's input over `split` of the run, entering
// the model at stage 0 (every norm is reached). Throws Error when the engine gives no
// evaluation batches or the split does not exist.
std::vector<models::LayerPopulation> split_population(const EpochContext& ctx,
                                                      const std::string& split,
                                                      const models::PopulationOptions& options,
                                                      const std::string& who);

struct Shift {
  torch::Tensor mu, sigma;  // () float64, on the layer's device
};
// running: the layer's running_mean / running_var (any float dtype); population in float64.
Shift estimation_shift(const torch::Tensor& running_mean, const torch::Tensor& running_var,
                       const models::LayerPopulation& population);

}  // namespace normlab::train
