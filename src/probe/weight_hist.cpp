// weight_hist: every N minibatches (every one by default, as S2 asks), a histogram of each
// selected layer's weights after the optimizer step ("weight_hist/<layer>", 40 bins over a
// fixed range), the layer's weight variance ("weight_var/<layer>") and its change over the
// step ("weight_var_delta/<layer>" = var after - var before the step), all on the device.
#include <memory>

#include "core/error.h"
#include "probe/bins_option.h"
#include "probe/registry.h"
#include "probe/selection.h"
#include "train/histogram.h"

namespace normlab::probe {
namespace {

torch::Tensor flat(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> parts;
  parts.reserve(params.size());
  for (const auto& p : params) parts.push_back(p.detach().reshape({-1}));
  return torch::cat(parts);
}

class WeightHist : public train::Observer {
 public:
  WeightHist(const Json& o, const ProbeSetup& s)
      : spec_(bin_spec(o, "weight_hist", s.run)), every_(o.at("every").get<int64_t>()) {
    layers_ =
        select_params(*s.model, *s.trainable, o.at("params"), "probe.weight_hist.params").layers;
    for (const auto& l : layers_) {
      var_names_.push_back("weight_var/" + l.name);
      delta_names_.push_back("weight_var_delta/" + l.name);
    }
  }
  void after_clip(const train::StepContext& ctx) override {
    if (!due(ctx)) return;
    before_ = variances();  // the weights the step starts from
  }
  void after_step(const train::StepContext& ctx) override {
    if (!due(ctx)) return;
    torch::Tensor after = variances();
    ctx.recorder->step_values(var_names_, ctx.global_step, after);
    ctx.recorder->step_values(delta_names_, ctx.global_step, after - before_);
    std::vector<torch::Tensor> weights;
    for (const auto& l : layers_) weights.push_back(flat(l.params));
    torch::Tensor rows = train::histograms_packed(weights, spec_);  // (L, bins + 6)
    for (size_t i = 0; i < layers_.size(); ++i) {
      ctx.recorder->histogram("weight_hist/" + layers_[i].name, store::Axis::kStep, ctx.global_step,
                              spec_, rows[static_cast<int64_t>(i)]);
    }
  }

 private:
  bool due(const train::StepContext& ctx) const { return ctx.global_step % every_ == 0; }
  torch::Tensor variances() const {
    std::vector<torch::Tensor> v;
    for (const auto& l : layers_) v.push_back(flat(l.params).to(torch::kFloat).var(false));
    return torch::stack(v);  // (L) population variance
  }

  train::BinSpec spec_;
  int64_t every_;
  std::vector<ParamItem> layers_;
  std::vector<torch::Tensor> params_;  // every layer's tensors, layer by layer
  std::unique_ptr<train::HistogramBatch> batch_;
  std::vector<std::string> var_names_, delta_names_;
  torch::Tensor before_;
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
