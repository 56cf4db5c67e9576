// grad_hist: histograms of the gradients of every selected parameter tensor and layer, before
// clipping ("grad_hist/pre/<item>") and, when the run clips, after it ("grad_hist/post/<item>"),
// so S0's "gradient distributions with vs without clipping" exist. Per epoch the histogram
// accumulates every step of the epoch; `every = N` also records a step histogram every N
// steps. Bins are fixed by the options (log10 |g| over [-10, 1] by default: gradients span
// decades), so they are shared by all epochs, runs and configurations of a study. Everything
// stays on the device until the recorder flushes the epoch.
#include <map>

#include "core/error.h"
#include "probe/bins_option.h"
#include "probe/registry.h"
#include "probe/selection.h"
#include "train/histogram.h"

namespace normlab::probe {
namespace {

class GradHist : public train::Observer {
 public:
  GradHist(const Json& o, const ProbeSetup& s)
      : spec_(bin_spec(o, "grad_hist", s.run)),
        every_(o.at("every").get<int64_t>()),
        per_epoch_(o.at("epoch").get<bool>()),
        post_(o.at("post").get<bool>() && (s.clip.max_norm > 0 || s.clip.max_value > 0)) {
    Selection sel = select_params(*s.model, *s.trainable, o.at("params"), "probe.grad_hist.params");
    const std::string items = o.at("items").get<std::string>();
    if (items != "layer") items_ = sel.params;
    if (items != "param") items_.insert(items_.end(), sel.layers.begin(), sel.layers.end());
    acc_.resize(2);
  }
  void after_backward(const train::StepContext& ctx) override { take(ctx, 0); }
  void after_clip(const train::StepContext& ctx) override {
    if (post_) take(ctx, 1);
  }
  void on_epoch_end(const train::EpochContext& ctx) override {
    for (int stage = 0; stage < 2; ++stage) {
      for (auto& [i, packed] : acc_[static_cast<size_t>(stage)]) {
        ctx.recorder->histogram(name(stage, i), store::Axis::kEpoch, ctx.epoch, spec_, packed);
      }
      acc_[static_cast<size_t>(stage)].clear();
    }
  }

 private:
  std::string name(int stage, size_t i) const {
    return std::string("grad_hist/") + (stage == 0 ? "pre/" : "post/") + items_[i].name;
  }
  void take(const train::StepContext& ctx, int stage) {
    const bool step_hist = every_ > 0 && ctx.global_step % every_ == 0;
    if (!step_hist && !per_epoch_) return;
    for (size_t i = 0; i < items_.size(); ++i) {
      std::vector<torch::Tensor> grads;
      for (const auto& p : items_[i].params) {
        if (p.grad().defined()) grads.push_back(p.grad().detach().reshape({-1}));
      }
      if (grads.empty()) continue;
      torch::Tensor packed = train::histogram_packed(torch::cat(grads), spec_);
      if (step_hist) {
        ctx.recorder->histogram(name(stage, i), store::Axis::kStep, ctx.global_step, spec_, packed);
      }
      if (per_epoch_) {
        auto& acc = acc_[static_cast<size_t>(stage)];
        auto it = acc.find(i);
        if (it == acc.end()) {
          acc.emplace(i, packed);
        } else {
          it->second = train::merge_packed(it->second, packed);
        }
      }
    }
  }

  train::BinSpec spec_;
  int64_t every_;
  bool per_epoch_;
  bool post_;
  std::vector<ParamItem> items_;
  std::vector<std::map<size_t, torch::Tensor>> acc_;  // [stage] item -> packed histogram
};

}  // namespace

ProbeInfo grad_hist_probe() {
  ProbeInfo p;
  p.name = "grad_hist";
  p.summary =
      "gradient histograms per parameter and layer, per epoch (and every N steps), "
      "pre/post clip";
  p.defaults = {{"enabled", false}, {"params", "trainable"}, {"items", "both"},
                {"bins", 64},       {"scale", "log10"},      {"range", {-10.0, 1.0}},
                {"every", 0},       {"epoch", true},         {"post", true}};
  p.help = {{"params", "\"trainable\", \"all\" or a list of module-path patterns"},
            {"items", "\"param\" (each tensor), \"layer\" (each module) or \"both\""},
            {"bins", "number of bins (64: W&B's default)"},
            {"scale", "\"log10\" (bins over log10 |g|) or \"linear\""},
            {"range", "[lo, hi] of the binned quantity; the end bins are open-ended"},
            {"every", "also a histogram every N global steps (0 = off)"},
            {"epoch", "a histogram per epoch accumulated over all its steps"},
            {"post", "also after clipping (only in runs that clip)"}};
  p.check = [](const Json& o, const std::string& where) {
    check_params_option(o.at("params"), where + ": key 'probe.grad_hist.params'");
    bin_spec(o, "grad_hist", where);
    const auto items = o.at("items").get<std::string>();
    require(items == "param" || items == "layer" || items == "both",
            where + ": key 'probe.grad_hist.items'", "unknown value '" + items + "'",
            "use \"param\", \"layer\" or \"both\"");
    require(o.at("every").get<int64_t>() >= 0, where + ": key 'probe.grad_hist.every'",
            "must be >= 0 (0 = no step histograms)");
  };
  p.patterns = [](const Json& o) { return params_patterns(o.at("params")); };
  p.make = [](const Json& o, const ProbeSetup& s) -> std::unique_ptr<train::Observer> {
    return std::make_unique<GradHist>(o, s);
  };
  return p;
}

}  // namespace normlab::probe
