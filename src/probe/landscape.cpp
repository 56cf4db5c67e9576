#include "probe/landscape.h"

#include <algorithm>

#include "probe/registry.h"
#include "probe/selection.h"

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

std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> landscape_directions(
    const std::vector<torch::Tensor>& params, uint64_t seed) {
  torch::Generator gen = make_generator(seed);
  auto d1 = filter_normalized_direction(params, gen);
  auto d2 = filter_normalized_direction(params, gen);
  return {std::move(d1), std::move(d2)};
}

store::Surface loss_landscape(models::ClassifierImpl& model,
                              const std::vector<torch::Tensor>& params,
                              const std::vector<data::Batch>& batches, int64_t input_stage,
                              const LandscapeOptions& options) {
  require(options.resolution >= 2, "probe.landscape.resolution", "must be >= 2");
  require(options.span > 0, "probe.landscape.span", "must be > 0");
  require(!batches.empty(), "loss landscape", "the evaluation set is empty");
  train::EvalModeGuard eval_mode(model);
  train::WeightRestoreGuard restore(params);
  torch::NoGradGuard no_grad;

  auto [d1, d2] = landscape_directions(params, options.seed);
  std::vector<torch::Tensor> origin;
  for (const auto& p : params) origin.push_back(p.detach().clone());

  store::Surface out;
  out.x_label = "alpha";
  out.y_label = "beta";
  out.z_label = "loss";
  for (int64_t i = 0; i < options.resolution; ++i) {
    double t = -options.span + 2.0 * options.span * static_cast<double>(i) /
                                   static_cast<double>(options.resolution - 1);
    out.x.push_back(t);
    out.y.push_back(t);
  }
  out.z.assign(out.y.size(), std::vector<double>(out.x.size(), 0.0));
  for (size_t yi = 0; yi < out.y.size(); ++yi) {
    for (size_t xi = 0; xi < out.x.size(); ++xi) {
      for (size_t k = 0; k < params.size(); ++k) {
        params[k].copy_(origin[k] + out.x[xi] * d1[k] + out.y[yi] * d2[k]);
      }
      torch::Tensor sum = torch::zeros({}, torch::kDouble);
      int64_t n = 0;
      for (const auto& batch : batches) {
        torch::Tensor loss =
            train::cross_entropy(model.forward_from(batch.x, input_stage), batch.y);
        sum += loss.to(torch::kCPU, torch::kDouble) * batch.y.size(0);
        n += batch.y.size(0);
      }
      out.z[yi][xi] = sum.item<double>() / static_cast<double>(n);
    }
  }
  return out;
}

namespace {

class LandscapeProbe : public train::Observer {
 public:
  LandscapeProbe(const Json& o, const ProbeSetup& s)
      : option_(o.at("params")), split_(o.at("split").get<std::string>()), run_(s.run) {
    options_.resolution = o.at("resolution").get<int64_t>();
    options_.span = o.at("span").get<double>();
    options_.max_batches = o.at("batches").get<int64_t>();
    options_.seed = s.seed;
    // Validated now, before any training: a selection that matches nothing fails here.
    select_params(*s.model, *s.trainable, option_, run_ + ": key 'probe.landscape.params'");
  }
  void on_run_end(const train::EpochContext& ctx) override {
    require(ctx.eval != nullptr, run_, "the landscape probe needs evaluation batches");
    Selection sel =
        select_params(*ctx.model, *ctx.trainable, option_, run_ + ": key 'probe.landscape.params'");
    std::vector<torch::Tensor> params;
    int64_t lowest = ctx.model->num_stages();
    for (const auto& item : sel.params) {
      params.push_back(item.params.front());
      lowest = std::min(lowest, ctx.model->stage_of(item.name));
    }
    std::string split = split_;
    if (!ctx.eval->has_split(split)) {
      require(split == "val" && ctx.eval->has_split("train"),
              run_ + ": key 'probe.landscape.split'", "the run has no split '" + split + "'",
              "use \"train\", \"val\" or \"test\"");
      split = "train";  // no validation split: the (unaugmented) training images
    }
    const int64_t stage = std::min(lowest, ctx.eval->input_stage());
    std::vector<data::Batch> batches;
    ctx.eval->for_each(split, options_.max_batches, stage,
                       [&](const data::Batch& b) { batches.push_back(b); });
    ctx.recorder->surface("landscape", ctx.epoch,
                          loss_landscape(*ctx.model, params, batches, stage, options_));
  }

 private:
  Json option_;
  std::string split_;
  std::string run_;
  LandscapeOptions options_;
};

}  // namespace

ProbeInfo landscape_probe() {
  ProbeInfo p;
  p.name = "landscape";
  p.summary = "2-D filter-normalised loss landscape around the final weights (Li et al. 2018)";
  p.defaults = {{"enabled", false}, {"params", Json::array({"trainable"})},
                {"resolution", 11}, {"span", 1.0},
                {"batches", 4},     {"split", "val"}};
  p.help = {{"params", "\"trainable\", \"all\" or a list of module-path patterns that move"},
            {"resolution", "grid points per axis (odd keeps the centre on the grid)"},
            {"span", "alpha, beta in [-span, span]"},
            {"batches", "evaluation batches per grid point"},
            {"split", "\"val\" (the training set when there is none), \"train\" or \"test\""}};
  p.check = [](const Json& o, const std::string& where) {
    check_params_option(o.at("params"), where + ": key 'probe.landscape.params'");
    require(o.at("resolution").get<int64_t>() >= 2, where + ": key 'probe.landscape.resolution'",
            "must be >= 2");
    require(o.at("span").get<double>() > 0, where + ": key 'probe.landscape.span'", "must be > 0");
    require(o.at("batches").get<int64_t>() >= 1, where + ": key 'probe.landscape.batches'",
            "must be >= 1");
    const auto split = o.at("split").get<std::string>();
    require(split == "val" || split == "train" || split == "test",
            where + ": key 'probe.landscape.split'", "unknown split '" + split + "'",
            "use \"val\", \"train\" or \"test\"");
  };
  p.patterns = [](const Json& o) { return params_patterns(o.at("params")); };
  p.make = [](const Json& o, const ProbeSetup& s) -> std::unique_ptr<train::Observer> {
    return std::make_unique<LandscapeProbe>(o, s);
  };
  return p;
}

}  // namespace normlab::probe
