// DMBN's epoch-end step (nn/dmbn.h; seed 004 eq. 4.1): after each epoch's training, for every
// DMBN layer, measure the population mean of its input over the chosen split and adopt the
// candidate momentum whose shadow running mean is closest to it (minimal ESM_mu). Records
// "dmbn/beta/<layer>" (beta*) and "dmbn/esm_mu/<layer>" (the winner's ESM_mu) per epoch.
#pragma once

#include <string>
#include <vector>

#include "nn/dmbn.h"
#include "train/observer.h"

namespace normlab::train {

class DmbnAdopter : public Observer {
 public:
  DmbnAdopter(torch::nn::Module& model, nn::DmbnOptions options);
  void after_train_epoch(const EpochContext& ctx) override;

 private:
  nn::DmbnOptions options_;
  std::vector<std::string> paths_;  // DMBN layers in module order
  std::vector<nn::DmbnImpl*> layers_;
  std::vector<std::string> beta_names_, esm_names_;
};

// The DMBN layers of a model, in module order (empty when it has none).
std::vector<std::pair<std::string, nn::DmbnImpl*>> dmbn_layers(torch::nn::Module& model);

}  // namespace normlab::train
