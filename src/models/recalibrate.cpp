#include "models/recalibrate.h"

#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "models/model.h"
#include "models/population_stats.h"

namespace normlab::models {
namespace {

// running stats := (m, v); with keep_eval_output, weight and bias by the header's formula.
template <typename BN>
bool rewrite(torch::nn::Module* module, const LayerPopulation& stats,
             const RecalibrateOptions& options, const std::string& path) {
  auto* bn = dynamic_cast<BN*>(module);
  if (bn == nullptr) return false;
  require(bn->options.track_running_stats(), "BatchNorm '" + path + "'",
          "has no running statistics to recalibrate (track_running_stats is off)");
  require(stats.count > 1, "BatchNorm '" + path + "'",
          "saw " + std::to_string(stats.count) + " values per channel during recalibration",
          "it needs at least 2: give more or larger batches, or check it is on the forward path");
  torch::NoGradGuard no_grad;
  const torch::Tensor m = stats.mean;
  const torch::Tensor v = stats.var;
  if (options.keep_eval_output) {
    require(bn->options.affine(), "BatchNorm '" + path + "'",
            "has no affine parameters, so its eval output cannot be kept",
            "set keep_eval_output = false to only replace the running statistics");
    const double eps = bn->options.eps();
    const torch::Tensor w = bn->weight.to(torch::kFloat64);
    const torch::Tensor old_mean = bn->running_mean.to(torch::kFloat64);
    const torch::Tensor old_std = (bn->running_var.to(torch::kFloat64) + eps).sqrt();
    bn->bias.copy_(bn->bias.to(torch::kFloat64) + w * (m - old_mean) / old_std);
    bn->weight.copy_(w * (v + eps).sqrt() / old_std);
  }
  bn->running_mean.copy_(m);
  bn->running_var.copy_(v);
  return true;
}

}  // namespace

RecalibrateReport recalibrate_batchnorm(
    torch::nn::Module& model, const std::function<torch::Tensor(const torch::Tensor&)>& forward,
    const std::function<bool(torch::Tensor&)>& next_batch, const RecalibrateOptions& options) {
  RecalibrateReport report;
  const auto layers = measure_population(model, forward, [&](const auto& consume) {
    torch::Tensor batch;
    while (next_batch(batch)) {
      consume(batch);
      ++report.batches;
      report.samples += batch.size(0);
    }
  });
  for (const auto& layer : layers) {
    const bool done =
        rewrite<torch::nn::BatchNorm1dImpl>(layer.module, layer, options, layer.path) ||
        rewrite<torch::nn::BatchNorm2dImpl>(layer.module, layer, options, layer.path) ||
        rewrite<torch::nn::BatchNorm3dImpl>(layer.module, layer, options, layer.path);
    if (done) ++report.layers;
  }
  return report;
}

RecalibrateReport recalibrate_batchnorm(torch::nn::Module& model,
                                        const std::function<bool(torch::Tensor&)>& next_batch,
                                        const RecalibrateOptions& options) {
  auto* classifier = dynamic_cast<ClassifierImpl*>(&model);
  require(classifier != nullptr, "recalibrate_batchnorm",
          "this overload needs a models::Classifier to know how to run the model",
          "pass the forward function explicitly (the overload taking `forward`)");
  return recalibrate_batchnorm(
      model, [classifier](const torch::Tensor& x) { return classifier->forward(x); }, next_batch,
      options);
}

}  // namespace normlab::models
