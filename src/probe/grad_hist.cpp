// grad_hist: histograms of the gradients of every selected parameter tensor and layer, before
// clipping ("grad_hist/pre/<item>") and, when the run clips, after it ("grad_hist/post/<item>"),
// so S0's "gradient distributions with vs without clipping" exist. Per epoch the histogram
// accumulates `epoch_steps` evenly spaced steps of the epoch (16 by default, 0 = every step:
// a histogram of every trainable element costs ~20 passes over the gradients, which was a
// quarter of the quickstart's small-CNN step when done every step); `every = N` also records
// a step histogram every N steps. Bins are fixed by the options (log10 |g| over [-10, 1] by
// default: gradients span decades), so they are shared by all epochs, runs and configurations of a
// study. Everything stays on the device until the recorder flushes the epoch.
#include <algorithm>
#include <map>
#include <memory>

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
        epoch_steps_(o.at("epoch_steps").get<int64_t>()),
        post_(o.at("post").get<bool>() && (s.clip.max_norm > 0 || s.clip.max_value > 0)) {
    Selection sel = select_params(*s.model, *s.trainable, o.at("params"), "probe.grad_hist.params");
    const std::string items = o.at("items").get<std::string>();
    with_params_ = items != "layer";
    with_layers_ = items != "param";
    std::vector<int64_t> layer_of_param;
    for (const auto& p : sel.params) {
      params_.push_back(p.params.front());
      if (with_params_) names_.push_back(p.name);
      for (size_t l = 0; l < sel.layers.size(); ++l) {
        if (sel.layers[l].name == layer_of(p.name))
          layer_of_param.push_back(static_cast<int64_t>(l));
      }
    }
    if (with_layers_) {
      for (const auto& l : sel.layers) names_.push_back(l.name);
    }
    for (const char* stage : {"grad_hist/pre/", "grad_hist/post/"}) {
      hist_names_.emplace_back();
      for (const auto& n : names_) hist_names_.back().push_back(stage + n);
    }
    std::vector<int64_t> sizes;
    for (const auto& p : params_) sizes.push_back(p.numel());
    batch_ = std::make_unique<train::HistogramBatch>(
        spec_, sizes, with_layers_ ? layer_of_param : std::vector<int64_t>{},
        params_.front().device());
    acc_.resize(2);
  }
  void after_backward(const train::StepContext& ctx) override { take(ctx, 0); }
  void after_clip(const train::StepContext& ctx) override {
    if (post_) take(ctx, 1);
  }
  void on_epoch_end(const train::EpochContext& ctx) override {
    for (int stage = 0; stage < 2; ++stage) {
      torch::Tensor& acc = acc_[static_cast<size_t>(stage)];
      if (!acc.defined()) continue;
      record(*ctx.recorder, stage, store::Axis::kEpoch, ctx.epoch, acc);
      acc = torch::Tensor();
    }
  }

 private:
  void record(train::Recorder& rec, int stage, store::Axis axis, int64_t step,
              const torch::Tensor& rows) {
    rec.histograms(hist_names_[static_cast<size_t>(stage)], axis, step, spec_, rows);
  }
  void take(const train::StepContext& ctx, int stage) {
    const bool step_hist = every_ > 0 && ctx.global_step % every_ == 0;
    const int64_t stride =
        epoch_steps_ > 0 ? std::max<int64_t>(1, ctx.steps_per_epoch / epoch_steps_) : 1;
    const bool epoch_sample = per_epoch_ && ctx.step % stride == 0;
    if (!step_hist && !epoch_sample) return;
    std::vector<torch::Tensor> grads;
    for (const auto& p : params_) {
      // A parameter unused in this step has no gradient: an empty histogram for it.
      grads.push_back(p.grad().defined() ? p.grad() : torch::zeros({0}, p.options()));
    }
    torch::Tensor rows = (*batch_)(grads);  // (P + L, bins + 6): params, then layers
    // The rows named: params and/or layers.
    rows = rows.narrow(0, with_params_ ? 0 : static_cast<int64_t>(params_.size()),
                       static_cast<int64_t>(names_.size()));
    if (step_hist) record(*ctx.recorder, stage, store::Axis::kStep, ctx.global_step, rows);
    if (epoch_sample) {
      torch::Tensor& acc = acc_[static_cast<size_t>(stage)];
      if (acc.defined()) {
        train::merge_packed_into(acc, rows);
      } else {
        acc = rows.clone();
      }
    }
  }

  train::BinSpec spec_;
  int64_t every_;
  bool per_epoch_;
  int64_t epoch_steps_;
  bool post_;
  bool with_params_ = true, with_layers_ = true;
  std::vector<torch::Tensor> params_;
  std::vector<std::string> names_;                    // params, then layers
  std::vector<std::vector<std::string>> hist_names_;  // [stage] the records' names
  std::unique_ptr<train::HistogramBatch> batch_;
  std::vector<torch::Tensor> acc_;  // [stage] (items, bins + 6) accumulated this epoch
};

}  // namespace

ProbeInfo grad_hist_probe() {
  ProbeInfo p;
  p.name = "grad_hist";
  p.summary =
      "gradient histograms per parameter and layer, per epoch (and every N steps), "
      "pre/post clip";
  p.defaults = {{"enabled", false},  {"params", Json::array({"trainable"})},
                {"items", "both"},   {"bins", 64},
                {"scale", "log10"},  {"range", {-10.0, 1.0}},
                {"every", 0},        {"epoch", true},
                {"epoch_steps", 16}, {"post", true}};
  p.help = {{"params", "\"trainable\", \"all\" or a list of module-path patterns"},
            {"items", "\"param\" (each tensor), \"layer\" (each module) or \"both\""},
            {"bins", "number of bins (64: W&B's default)"},
            {"scale", "\"log10\" (bins over log10 |g|) or \"linear\""},
            {"range", "[lo, hi] of the binned quantity; the end bins are open-ended"},
            {"every", "also a histogram every N global steps (0 = off)"},
            {"epoch", "a histogram per epoch, accumulated over its steps"},
            {"epoch_steps", "evenly spaced steps an epoch histogram accumulates (0 = all)"},
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
    require(o.at("epoch_steps").get<int64_t>() >= 0, where + ": key 'probe.grad_hist.epoch_steps'",
            "must be >= 0 (0 = every step)");
  };
  p.patterns = [](const Json& o) { return params_patterns(o.at("params")); };
  p.make = [](const Json& o, const ProbeSetup& s) -> std::unique_ptr<train::Observer> {
    return std::make_unique<GradHist>(o, s);
  };
  return p;
}

}  // namespace normlab::probe
