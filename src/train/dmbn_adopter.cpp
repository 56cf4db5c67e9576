#include "train/dmbn_adopter.h"

#include <utility>

#include "core/error.h"
#include "train/estimation_shift.h"

namespace normlab::train {

std::vector<std::pair<std::string, nn::DmbnImpl*>> dmbn_layers(torch::nn::Module& model) {
  std::vector<std::pair<std::string, nn::DmbnImpl*>> out;
  for (const auto& item : model.named_modules()) {
    if (auto* d = dynamic_cast<nn::DmbnImpl*>(item.value().get())) out.emplace_back(item.key(), d);
  }
  return out;
}

DmbnAdopter::DmbnAdopter(torch::nn::Module& model, nn::DmbnOptions options)
    : options_(std::move(options)) {
  for (auto& [path, layer] : dmbn_layers(model)) {
    paths_.push_back(path);
    layers_.push_back(layer);
    beta_names_.push_back("dmbn/beta/" + path);
    esm_names_.push_back("dmbn/esm_mu/" + path);
  }
  require(!layers_.empty(), "DMBN", "the model has no dmbn layer");
}

void DmbnAdopter::after_train_epoch(const EpochContext& ctx) {
  const std::string who = "DMBN (model.dmbn.split = '" + options_.split + "')";
  const bool restart = options_.shadows == "restart";
  std::vector<torch::Tensor> betas, esms;
  // Adopts layer i's winner given its input's population statistics.
  auto adopt = [&](size_t i, const std::vector<models::LayerPopulation>& pops) {
    const models::LayerPopulation* pop = nullptr;
    for (const auto& p : pops) {
      if (p.module == layers_[i]) pop = &p;
    }
    require(pop != nullptr && pop->count > 0, "DMBN layer '" + paths_[i] + "'",
            "saw no data in the measuring pass");
    const torch::Tensor esm = layers_[i]->candidate_esm(pop->mean);  // (K)
    const torch::Tensor k = esm.argmin();  // first minimum: ties go to the smaller beta
    layers_[i]->adopt(k, restart);
    // The candidate as written in the study (the layer's buffer holds it in float32).
    const torch::Tensor exact =
        torch::tensor(layers_[i]->options.candidates, esm.options().dtype(torch::kDouble));
    betas.push_back(exact.index_select(0, k.reshape({1})).squeeze(0));
    esms.push_back(esm.index_select(0, k.reshape({1})).squeeze(0));
  };
  if (options_.order == "joint") {
    const auto pops = split_population(ctx, options_.split, {}, who);
    for (size_t i = 0; i < layers_.size(); ++i) adopt(i, pops);
  } else {
    // Front to back: layer i's input is measured with layers < i already switched.
    for (size_t i = 0; i < layers_.size(); ++i) {
      adopt(i, split_population(ctx, options_.split, {}, who));
    }
  }
  ctx.recorder->epoch_values(beta_names_, ctx.epoch, torch::stack(betas));
  ctx.recorder->epoch_values(esm_names_, ctx.epoch, torch::stack(esms));
}

}  // namespace normlab::train
