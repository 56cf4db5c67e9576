#include "probe/landscape.h"

#include "core/error.h"
#include "core/runtime.h"
#include "train/guards.h"
#include "train/loss.h"

namespace normlab::probe {
namespace {

std::vector<torch::Tensor> filter_normalized_direction(const std::vector<torch::Tensor>& params,
                                                       torch::Generator& gen) {
  std::vector<torch::Tensor> dir;
  dir.reserve(params.size());
  for (const auto& p : params) {
    if (p.dim() <= 1) {
      dir.push_back(torch::zeros_like(p));
      continue;
    }
    torch::Tensor d = torch::randn(p.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat))
                          .to(p.device(), p.scalar_type());
    torch::Tensor d_rows = d.flatten(1);  // (filters, rest)
    torch::Tensor p_rows = p.detach().flatten(1);
    torch::Tensor scale = p_rows.norm(2, {1}, true) / (d_rows.norm(2, {1}, true) + 1e-10);
    dir.push_back((d_rows * scale).view(p.sizes()));
  }
  return dir;
}

}  // namespace

nlohmann::json Landscape::to_json() const {
  return {{"alphas", alphas}, {"betas", betas}, {"loss", loss}};
}

Landscape loss_landscape(models::Classifier& model, const std::vector<torch::Tensor>& params,
                         data::Batcher& batcher, const LandscapeOptions& options) {
  // Fixed evaluation batches, so every grid point sees the same data.
  std::vector<data::Batch> batches;
  batcher.start_epoch(0);
  data::Batch b;
  while (static_cast<int64_t>(batches.size()) < options.max_batches && batcher.next(b)) {
    batches.push_back(b);
  }
  return loss_landscape(model, params, batches, 0, options);
}

Landscape loss_landscape(models::Classifier& model, const std::vector<torch::Tensor>& params,
                         const std::vector<data::Batch>& batches, int64_t input_stage,
                         const LandscapeOptions& options) {
  require(options.resolution >= 2, "probe.landscape.resolution", "must be >= 2");
  require(options.span > 0, "probe.landscape.span", "must be > 0");
  require(!batches.empty(), "loss landscape", "the evaluation set is empty");
  train::EvalModeGuard eval_mode(*model);
  train::WeightRestoreGuard restore(params);
  torch::NoGradGuard no_grad;

  torch::Generator gen = make_generator(options.seed);
  auto d1 = filter_normalized_direction(params, gen);
  auto d2 = filter_normalized_direction(params, gen);
  std::vector<torch::Tensor> origin;
  for (const auto& p : params) origin.push_back(p.detach().clone());

  Landscape out;
  for (int64_t i = 0; i < options.resolution; ++i) {
    double t = -options.span + 2.0 * options.span * static_cast<double>(i) /
                                   static_cast<double>(options.resolution - 1);
    out.alphas.push_back(t);
    out.betas.push_back(t);
  }
  out.loss.assign(out.betas.size(), std::vector<double>(out.alphas.size(), 0.0));
  for (size_t bi = 0; bi < out.betas.size(); ++bi) {
    for (size_t ai = 0; ai < out.alphas.size(); ++ai) {
      for (size_t k = 0; k < params.size(); ++k) {
        params[k].copy_(origin[k] + out.alphas[ai] * d1[k] + out.betas[bi] * d2[k]);
      }
      torch::Tensor sum = torch::zeros({}, torch::kDouble);
      int64_t n = 0;
      for (const auto& batch : batches) {
        torch::Tensor loss =
            train::cross_entropy(model->forward_from(batch.x, input_stage), batch.y);
        sum += loss.to(torch::kCPU, torch::kDouble) * batch.y.size(0);
        n += batch.y.size(0);
      }
      out.loss[bi][ai] = sum.item<double>() / static_cast<double>(n);
    }
  }
  return out;
}

}  // namespace normlab::probe
