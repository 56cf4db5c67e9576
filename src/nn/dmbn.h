// Dynamic Momentum BatchNorm (DMBN, seed 004 section 4.3; ../shared/STUDIES.md S4).
//
// A BatchNorm whose running-statistics momentum beta is chosen per layer and per epoch:
//   beta*_{l,e} = argmin_{beta in candidates} ESM_mu^{(l,e)}(beta)          (seed 004, eq. 4.1)
// with ESM_mu = ||mu_running(beta) - mu_population||_2 (Huang et al., CVPR 2022). During an
// epoch the layer normalises with batch statistics exactly like BatchNorm and keeps one shadow
// running estimate per candidate beta:
//   shadow_k = (1 - beta_k) shadow_k + beta_k batch        (PyTorch's momentum = beta)
// At the epoch's end train::DmbnAdopter measures the population statistics of the layer's
// input and calls adopt(): the running estimate (the one eval mode uses) becomes the winning
// shadow's. Shadows, running estimates and the adopted beta are registered buffers, so
// checkpoints carry them and a resumed run continues bit-identically.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/option_fields.h"

namespace normlab::nn {

// model.dmbn in a study file. The seed leaves two choices open; both readings are options.
struct DmbnOptions {
  std::vector<double> candidates = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
  // After adopting: "restart" (every shadow restarts from the adopted estimate, so during
  // epoch e the layer's estimate is an EMA with momentum beta*_{l,e}: the momentum itself is
  // dynamic, which is what eq. 4.1's per-epoch index says; the default) or "continue" (each
  // shadow stays an independent static-beta EMA since the start; adopting only selects one).
  std::string shadows = "restart";
  // "joint": every layer's population statistics from one pass under the network as it is
  // (the seed measures ESM of all layers after each epoch; the default, one pass).
  // "sequential": front to back, layer l measured with layers < l already switched to their
  // winners (one pass per DMBN layer).
  std::string order = "joint";
  std::string split = "val";  // the evaluation split the population statistics come from
};
void describe(DmbnOptions& o, OptionFields& f);

struct DmbnLayerOptions {
  int64_t channels = 0;
  bool map = false;  // (N, C, H, W) input; else (N, C)
  double eps = 1e-5;
  std::vector<double> candidates;
};

class DmbnImpl : public torch::nn::Cloneable<DmbnImpl> {
 public:
  explicit DmbnImpl(DmbnLayerOptions options);
  void reset() override;
  // x: (N, C) or (N, C, H, W). Train mode: batch statistics, shadows updated; eval mode: the
  // running estimate (the adopted shadow).
  torch::Tensor forward(const torch::Tensor& x);
  void pretty_print(std::ostream& stream) const override;

  // ||shadow_k - population_mean||_2 for every candidate k: (K), on the layer's device.
  torch::Tensor candidate_esm(const torch::Tensor& population_mean) const;
  // Makes shadow k (a () long tensor, not read on the host) the running estimate; with
  // `restart`, every shadow restarts from it.
  void adopt(const torch::Tensor& k, bool restart);

  DmbnLayerOptions options;
  torch::Tensor weight, bias;               // (C)
  torch::Tensor running_mean, running_var;  // (C): what eval mode normalises with
  torch::Tensor shadow_mean, shadow_var;    // (K, C)
  torch::Tensor beta;                       // () the adopted candidate (0 before the first)
  torch::Tensor betas;                      // (K) the candidates, as a tensor on the device
};
TORCH_MODULE(Dmbn);

}  // namespace normlab::nn
