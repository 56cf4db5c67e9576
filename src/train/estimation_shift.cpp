#include "train/estimation_shift.h"

#include "core/error.h"
#include "models/model.h"

namespace normlab::train {

std::vector<models::LayerPopulation> split_population(const EpochContext& ctx,
                                                      const std::string& split,
                                                      const models::PopulationOptions& options,
                                                      const std::string& who) {
  require(ctx.eval != nullptr, who, "needs the engine's evaluation batches");
  require(ctx.eval->has_split(split), who,
          "the run has no '" + split + "' split to measure population statistics on",
          "choose a split the run has (val needs data.val_fraction > 0, test needs data.test)");
  models::ClassifierImpl& model = *ctx.model;
  return models::measure_population(
      model, [&](const torch::Tensor& x) { return model.forward_from(x, 0); },
      [&](const auto& consume) {
        ctx.eval->for_each(split, 0, 0, [&](const data::Batch& b) {
          consume(b.x);
          return true;
        });
      },
      options);
}

Shift estimation_shift(const torch::Tensor& running_mean, const torch::Tensor& running_var,
                       const models::LayerPopulation& population) {
  const torch::Tensor m = running_mean.to(torch::kDouble);
  const torch::Tensor s = running_var.to(torch::kDouble).clamp_min(0).sqrt();
  return {(m - population.mean).norm(), (s - population.var.clamp_min(0).sqrt()).norm()};
}

}  // namespace normlab::train
