// weight_hist: every N minibatches (every one by default, as S2 asks), a histogram of each
// selected layer's weights after the optimizer step ("weight_hist/<layer>", 40 bins over a
// fixed range), the layer's weight variance ("weight_var/<layer>") and its change over the
// step ("weight_var_delta/<layer>" = var after - var before the step), all on the device.
#include <algorithm>
#include <memory>

#include "core/error.h"
#include "probe/bins_option.h"
#include "probe/registry.h"
#include "probe/selection.h"
#include "train/histogram.h"

namespace normlab::probe {
namespace {

// Population variance of each layer from its histogram row's sum and sum of squares (float64).
torch::Tensor variances(const torch::Tensor& layer_rows, int64_t bins) {
  if (layer_rows.device().is_cpu()) {
    // Per step on a head's few layers, a loop is cheaper than the operations below.
    const int64_t layers = layer_rows.size(0), width = layer_rows.size(1);
    torch::Tensor out = torch::empty({layers}, torch::kDouble);
    const double* r = layer_rows.contiguous().data_ptr<double>();
    for (int64_t l = 0; l < layers; ++l) {
      const double* row = r + l * width;
      const double n = std::max(row[bins], 1.0), mean = row[bins + 2] / n;
      out.data_ptr<double>()[l] = row[bins + 3] / n - mean * mean;
    }
    return out;
  }
  torch::Tensor n = layer_rows.select(1, bins).clamp_min(1);
  torch::Tensor mean = layer_rows.select(1, bins + 2) / n;
  return layer_rows.select(1, bins + 3) / n - mean * mean;  // (L)
}

class WeightHist : public train::Observer {
 public:
  WeightHist(const Json& o, const ProbeSetup& s)
      : spec_(bin_spec(o, "weight_hist", s.run)), every_(o.at("every").get<int64_t>()) {
    layers_ =
        select_params(*s.model, *s.trainable, o.at("params"), "probe.weight_hist.params").layers;
    std::vector<int64_t> sizes, layer_of;
    for (size_t l = 0; l < layers_.size(); ++l) {
      hist_names_.push_back("weight_hist/" + layers_[l].name);
      var_names_.push_back("weight_var/" + layers_[l].name);
      delta_names_.push_back("weight_var_delta/" + layers_[l].name);
      for (const auto& p : layers_[l].params) {
        params_.push_back(p);
        sizes.push_back(p.numel());
        layer_of.push_back(static_cast<int64_t>(l));
      }
    }
    // A row per parameter, then one per layer: only the layers' rows are used.
    batch_ =
        std::make_unique<train::HistogramBatch>(spec_, sizes, layer_of, params_.front().device());
  }
  void after_clip(const train::StepContext& ctx) override {
    if (!due(ctx)) return;
    // The weights the step starts from are the last recorded step's (every = 1), unless the
    // probe has not seen a step yet (a new or resumed run) or skips steps.
    if (!last_var_.defined() || every_ > 1) before_ = variances(layer_rows(), spec_.bins);
  }
  void after_step(const train::StepContext& ctx) override {
    if (!due(ctx)) return;
    torch::Tensor rows = layer_rows();  // (L, bins + 6)
    torch::Tensor after = variances(rows, spec_.bins);
    const torch::Tensor& before = every_ == 1 && last_var_.defined() ? last_var_ : before_;
    ctx.recorder->step_values(var_names_, ctx.global_step, after);
    ctx.recorder->step_values(delta_names_, ctx.global_step, after - before);
    last_var_ = after;
    ctx.recorder->histograms(hist_names_, store::Axis::kStep, ctx.global_step, spec_, rows);
  }
  void on_run_end(const train::EpochContext&) override { last_var_ = torch::Tensor(); }

 private:
  bool due(const train::StepContext& ctx) const { return ctx.global_step % every_ == 0; }
  torch::Tensor layer_rows() const {
    const auto first = static_cast<int64_t>(params_.size());
    return (*batch_)(params_).narrow(0, first, static_cast<int64_t>(layers_.size()));
  }

  train::BinSpec spec_;
  int64_t every_;
  std::vector<ParamItem> layers_;
  std::vector<torch::Tensor> params_;  // every layer's tensors, layer by layer
  std::unique_ptr<train::HistogramBatch> batch_;
  std::vector<std::string> hist_names_, var_names_, delta_names_;
  torch::Tensor before_, last_var_;  // (L) variances
};

}  // namespace

ProbeInfo weight_hist_probe() {
  ProbeInfo p;
  p.name = "weight_hist";
  p.summary = "per-layer weight histograms, variance and its change, every N minibatches";
  p.defaults = {{"enabled", false},     {"params", Json::array({"trainable"})},
                {"bins", 40},           {"scale", "linear"},
                {"range", {-1.0, 1.0}}, {"every", 1}};
  p.help = {{"params", "\"trainable\", \"all\" or a list of module-path patterns"},
            {"bins", "number of bins (40: seed 002)"},
            {"scale", "\"linear\" or \"log10\" (of |w|)"},
            {"range", "[lo, hi] of the binned quantity; the end bins are open-ended"},
            {"every", "record every N global steps (1 = every minibatch)"}};
  p.check = [](const Json& o, const std::string& where) {
    check_params_option(o.at("params"), where + ": key 'probe.weight_hist.params'");
    bin_spec(o, "weight_hist", where);
    require(o.at("every").get<int64_t>() >= 1, where + ": key 'probe.weight_hist.every'",
            "must be >= 1");
  };
  p.patterns = [](const Json& o) { return params_patterns(o.at("params")); };
  p.make = [](const Json& o, const ProbeSetup& s) -> std::unique_ptr<train::Observer> {
    return std::make_unique<WeightHist>(o, s);
  };
  return p;
}

}  // namespace normlab::probe
