// update_ratio: per layer and step, ||w_after - w_before|| / ||w_before|| of the optimizer
// step ("update_ratio/<layer>"), the usual training-health check: ratios far below 1e-4 mean
// the layer barely learns, far above 1e-2 that it is being rewritten (the band is an option).
// Per epoch, the fraction of steps outside the band ("update_ratio_flag/<layer>").
#include "core/error.h"
#include "probe/registry.h"
#include "probe/selection.h"

namespace normlab::probe {
namespace {

class UpdateRatio : public train::Observer {
 public:
  UpdateRatio(const Json& o, const ProbeSetup& s)
      : low_(o.at("low").get<double>()), high_(o.at("high").get<double>()) {
    layers_ =
        select_params(*s.model, *s.trainable, o.at("params"), "probe.update_ratio.params").layers;
    for (const auto& l : layers_) {
      names_.push_back("update_ratio/" + l.name);
      flag_names_.push_back("update_ratio_flag/" + l.name);
    }
  }
  void after_clip(const train::StepContext&) override {
    before_.clear();
    for (const auto& l : layers_) before_.push_back(flatten(l.params).clone());
  }
  void after_step(const train::StepContext& ctx) override {
    std::vector<torch::Tensor> ratios;
    for (size_t i = 0; i < layers_.size(); ++i) {
      torch::Tensor w = flatten(layers_[i].params);
      // A zero-norm layer (e.g. a freshly zeroed bias-only layer) gives inf/NaN: reported as is.
      ratios.push_back((w - before_[i]).norm(2) / before_[i].norm(2));
    }
    torch::Tensor r = torch::stack(ratios).to(torch::kFloat);  // (L)
    ctx.recorder->step_values(names_, ctx.global_step, r);
    torch::Tensor out = ((r < low_) | (r > high_)).to(torch::kDouble);
    flags_ = flags_.defined() ? flags_ + out : out;
    ++steps_;
  }
  void on_epoch_end(const train::EpochContext& ctx) override {
    if (steps_ == 0) return;
    ctx.recorder->epoch_values(flag_names_, ctx.epoch, flags_ / static_cast<double>(steps_));
    flags_ = torch::Tensor();
    steps_ = 0;
  }

 private:
  static torch::Tensor flatten(const std::vector<torch::Tensor>& params) {
    std::vector<torch::Tensor> parts;
    for (const auto& p : params) parts.push_back(p.detach().reshape({-1}).to(torch::kDouble));
    return torch::cat(parts);
  }

  double low_, high_;
  std::vector<ParamItem> layers_;
  std::vector<std::string> names_, flag_names_;
  std::vector<torch::Tensor> before_;
  torch::Tensor flags_;  // (L) steps outside [low, high] this epoch
  int64_t steps_ = 0;
};

}  // namespace

ProbeInfo update_ratio_probe() {
  ProbeInfo p;
  p.name = "update_ratio";
  p.summary = "per-layer ||delta w|| / ||w|| of every step; flags layers outside [low, high]";
  p.defaults = {
      {"enabled", false}, {"params", Json::array({"trainable"})}, {"low", 1e-4}, {"high", 1e-2}};
  p.help = {{"params", "\"trainable\", \"all\" or a list of module-path patterns"},
            {"low", "lower end of the healthy band"},
            {"high", "upper end of the healthy band"}};
  p.check = [](const Json& o, const std::string& where) {
    check_params_option(o.at("params"), where + ": key 'probe.update_ratio.params'");
    const double lo = o.at("low").get<double>(), hi = o.at("high").get<double>();
    require(lo > 0 && lo < hi, where + ": key 'probe.update_ratio.low'",
            "needs 0 < low < high, got low " + std::to_string(lo) + ", high " + std::to_string(hi));
  };
  p.patterns = [](const Json& o) { return params_patterns(o.at("params")); };
  p.make = [](const Json& o, const ProbeSetup& s) -> std::unique_ptr<train::Observer> {
    return std::make_unique<UpdateRatio>(o, s);
  };
  return p;
}

}  // namespace normlab::probe
