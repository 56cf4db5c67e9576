// The population statistics of what each running-statistics norm layer (BatchNorm, DMBN) sees:
// the per-channel mean and variance of its input over a whole evaluation split, under the
// network's current weights. BN recalibration writes them into the running estimates; the
// ESM probe and DMBN compare the running estimates against them (estimation shift, Huang et
// al., CVPR 2022: ESM_mu = ||mu_running - mu_population||_2).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace normlab::models {

struct LayerPopulation {
  std::string path;                     // module path, e.g. "features.2.1"
  torch::nn::Module* module = nullptr;  // the norm layer
  int64_t count = 0;                    // values seen per channel (N*H*W summed over batches)
  torch::Tensor mean;                   // (C) float64, on the layer's device
  torch::Tensor var;                    // (C) float64, unbiased (PyTorch's running_var)
};

struct PopulationOptions {
  // false: the whole network in eval mode (the distribution each layer sees at inference).
  // true: every batch-statistics norm in train mode (batch statistics upstream), their
  // running estimates left untouched; dropout stays off.
  bool upstream_train = false;
};

// Calls `feed`, which must call `consume(x)` for each batch (x enters `forward`), under
// torch::NoGradGuard, and returns the statistics of every running-statistics norm layer's
// input, in module order (layers the batches never reached have count 0). Statistics stay on
// the device (no host synchronisation per layer): per batch, per-channel mean and sum of
// squared deviations in float64, merged across batches with Chan et al.'s formula. Each
// layer is temporarily wrapped in its slot (a Sequential entry or a NormSlotOwner's slot:
// otherwise an Error names the layer) and training flags are restored afterwards, also when
// `forward` throws. Throws Error when no batch is fed.
std::vector<LayerPopulation> measure_population(
    torch::nn::Module& model, const std::function<torch::Tensor(const torch::Tensor&)>& forward,
    const std::function<void(const std::function<void(const torch::Tensor&)>& consume)>& feed,
    const PopulationOptions& options = {});

// The running estimate of a running-statistics norm layer: its "running_mean" and
// "running_var" buffers (PyTorch's names, which normlab's own layers keep).
struct RunningEstimate {
  torch::Tensor mean, var;  // (C)
};
RunningEstimate running_estimate(torch::nn::Module& layer, const std::string& path);

}  // namespace normlab::models
