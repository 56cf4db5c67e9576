// update_ratio: per layer and step, ||w_after - w_before|| / ||w_before|| of the optimizer
// step ("update_ratio/<layer>"), the usual training-health check: ratios far below 1e-4 mean
// the layer barely learns, far above 1e-2 that it is being rewritten (the band is an option).
// Per epoch, the fraction of steps outside the band ("update_ratio_flag/<layer>").
#include <cmath>

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
      for (const auto& p : l.params) {
        params_.push_back(p);
        param_layer_.push_back(layer_sizes_.size());
      }
      int64_t n = 0;
      for (const auto& p : l.params) n += p.numel();
      layer_sizes_.push_back(n);
    }
  }
  void after_clip(const train::StepContext&) override {
    if (on_cpu()) {
      save_before();
    } else {
      before_ = flatten();
    }
  }
  void after_step(const train::StepContext& ctx) override {
    torch::Tensor r = on_cpu() ? cpu_ratios() : ratios(flatten());  // (L) float32
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
  // On the CPU the probe reads the weights with plain loops: it runs every step, and
  // LibTorch's per-operation overhead (a few operations per layer and tensor) costs more than
  // the arithmetic on a head's small tensors (quickstart: 0.45 ms per step before, 0.08 after).
  bool on_cpu() const { return params_.front().device().is_cpu(); }
  // Each parameter as contiguous float32 (the parameter itself when it already is).
  std::vector<torch::Tensor> host_params() const {
    std::vector<torch::Tensor> out;
    out.reserve(params_.size());
    for (const auto& p : params_) out.push_back(p.detach().to(torch::kFloat).contiguous());
    return out;
  }
  void save_before() {
    host_before_.clear();
    for (const auto& v : host_params()) {
      const float* x = v.data_ptr<float>();
      host_before_.insert(host_before_.end(), x, x + v.numel());
    }
  }
  // ||after - before|| / ||before|| per layer, from host_before_ and the current weights.
  torch::Tensor cpu_ratios() const {
    std::vector<double> step_sq(layers_.size()), weight_sq(layers_.size());
    const float* b = host_before_.data();
    const std::vector<torch::Tensor> now = host_params();
    for (size_t t = 0; t < now.size(); ++t) {
      const float* w = now[t].data_ptr<float>();
      const int64_t n = now[t].numel();
      double ss = 0, ws = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double d = static_cast<double>(w[i]) - b[i];
        ss += d * d;
        ws += static_cast<double>(b[i]) * b[i];
      }
      step_sq[param_layer_[t]] += ss;
      weight_sq[param_layer_[t]] += ws;
      b += n;
    }
    torch::Tensor r = torch::empty({static_cast<int64_t>(layers_.size())}, torch::kFloat);
    float* out = r.data_ptr<float>();
    for (size_t l = 0; l < layers_.size(); ++l) {
      // A zero-norm layer (e.g. a freshly zeroed bias-only layer) gives inf/NaN: reported.
      out[l] = static_cast<float>(std::sqrt(step_sq[l]) / std::sqrt(weight_sq[l]));
    }
    return r;
  }
  // Every selected tensor's elements, layer by layer, in float64 (a new tensor: the step
  // updates the parameters in place).
  torch::Tensor flatten() const {
    std::vector<torch::Tensor> parts;
    parts.reserve(params_.size());
    for (const auto& p : params_) parts.push_back(p.detach().reshape({-1}));
    return torch::cat(parts).to(torch::kDouble);
  }
  // The same ratios with tensor operations, off the CPU.
  torch::Tensor ratios(const torch::Tensor& after) const {
    torch::Tensor d = after - before_;
    std::vector<torch::Tensor> ratios;
    int64_t start = 0;
    for (const int64_t n : layer_sizes_) {
      torch::Tensor step = d.narrow(0, start, n), weight = before_.narrow(0, start, n);
      ratios.push_back(step.dot(step).sqrt() / weight.dot(weight).sqrt());
      start += n;
    }
    return torch::stack(ratios).to(torch::kFloat);
  }

  double low_, high_;
  std::vector<ParamItem> layers_;
  std::vector<torch::Tensor> params_;  // every layer's tensors, layer by layer
  std::vector<size_t> param_layer_;    // the layer of each tensor of params_
  std::vector<int64_t> layer_sizes_;   // elements of each layer in flatten()
  std::vector<std::string> names_, flag_names_;
  torch::Tensor before_;            // flatten() before the step (off the CPU)
  std::vector<float> host_before_;  // the weights before the step, on the CPU
  torch::Tensor flags_;             // (L) steps outside [low, high] this epoch
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
