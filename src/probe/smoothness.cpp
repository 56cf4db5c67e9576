// The "smoothness" probe: Santurkar et al., "How Does Batch Normalization Help Optimization?"
// (NeurIPS 2018), section 3.1 and figure 4, measured the way the paper does, so that S2's
// runs with and without BatchNorm can show its claim rather than cite it. Every `every`
// training steps, on a fixed probe batch (the run's first training batch, kept), at the
// current weights w with gradient g = grad L(w):
//   for step sizes s = m * lr (m over `multipliers`, the paper's [1/2, 4] for VGG; lr each
//   parameter group's current learning rate), w_s = w - s g, and
//   loss_range     = max_s L(w_s) - min_s L(w_s)              (loss Lipschitzness, fig. 4a)
//   grad_change    = max_s ||grad L(w_s) - g||                (gradient predictiveness, 4b)
//   beta           = max_s ||grad L(w_s) - g|| / ||w_s - w||  ("effective" beta-smoothness, 4c)
// recorded per step as smoothness/loss_range, smoothness/grad_change and smoothness/beta.
// The model is evaluated as it trains (train mode: BatchNorm on batch statistics), over the
// trainable parameters. Weights, BN running statistics and the dropout stream are restored
// afterwards: the run trains exactly as without the probe. With mixup/cutmix the probe uses
// the plain labels.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "probe/registry.h"
#include "train/loss.h"

namespace normlab::probe {
namespace {

class SmoothnessProbe : public train::Observer {
 public:
  SmoothnessProbe(const Json& o, const ProbeSetup&)
      : every_(o.at("every").get<int64_t>()),
        lo_(o.at("multipliers")[0].get<double>()),
        hi_(o.at("multipliers")[1].get<double>()),
        points_(o.at("points").get<int64_t>()) {}

  void after_step(const train::StepContext& ctx) override {
    if (!batch_x_.defined()) {
      batch_x_ = ctx.input.detach().clone();
      batch_y_ = ctx.y.detach().clone();
    }
    if (ctx.global_step % every_ != 0) return;
    measure(ctx);
  }

 private:
  // Loss on the probe batch and its gradient over `params`.
  std::pair<torch::Tensor, std::vector<torch::Tensor>> loss_and_grad(
      const train::StepContext& ctx, const std::vector<torch::Tensor>& params) {
    torch::Tensor loss =
        train::cross_entropy(ctx.model->forward_from(batch_x_, ctx.input_stage), batch_y_);
    auto grads = torch::autograd::grad({loss}, params, {}, false, false, true);
    for (size_t k = 0; k < grads.size(); ++k) {
      if (!grads[k].defined()) grads[k] = torch::zeros_like(params[k]);
    }
    return {loss.detach(), grads};
  }

  void measure(const train::StepContext& ctx) {
    const std::vector<torch::Tensor>& params = ctx.trainable->params;
    if (params.empty()) return;
    // Per parameter, its group's learning rate.
    std::vector<double> lrs(params.size(), 0.0);
    for (const auto& group : ctx.optimizer->param_groups()) {
      for (const auto& p : group.params()) {
        for (size_t k = 0; k < params.size(); ++k) {
          if (params[k].is_same(p)) lrs[k] = group.options().get_lr();
        }
      }
    }
    // What must come back: weights, BN running statistics, the dropout stream.
    std::vector<torch::Tensor> weights, buffers, saved_buffers;
    for (const auto& p : params) weights.push_back(p.detach().clone());
    for (auto& b : ctx.model->buffers()) {
      buffers.push_back(b);
      saved_buffers.push_back(b.detach().clone());
    }
    at::Generator gen = at::globalContext().defaultGenerator(
        params.front().device().is_cuda() ? params.front().device() : torch::Device(torch::kCPU));
    const torch::Tensor rng = gen.get_state();

    auto [loss0, g0] = loss_and_grad(ctx, params);
    torch::Tensor lo = loss0, hi = loss0;  // loss at s = 0 included, as in fig. 4a's range
    torch::Tensor grad_change = torch::zeros({}, loss0.options());
    torch::Tensor beta = torch::zeros({}, loss0.options());
    for (int64_t i = 0; i < points_; ++i) {
      const double m = points_ == 1 ? hi_
                                    : lo_ + (hi_ - lo_) * static_cast<double>(i) /
                                                static_cast<double>(points_ - 1);
      torch::Tensor moved_sq = torch::zeros({}, loss0.options());
      {
        torch::NoGradGuard no_grad;
        for (size_t k = 0; k < params.size(); ++k) {
          torch::Tensor step = g0[k] * (m * lrs[k]);
          params[k].copy_(weights[k] - step);
          moved_sq += step.pow(2).sum();
        }
      }
      auto [loss, g] = loss_and_grad(ctx, params);
      torch::Tensor change_sq = torch::zeros({}, loss0.options());
      for (size_t k = 0; k < params.size(); ++k) change_sq += (g[k] - g0[k]).pow(2).sum();
      const torch::Tensor change = change_sq.sqrt();
      lo = torch::minimum(lo, loss);
      hi = torch::maximum(hi, loss);
      grad_change = torch::maximum(grad_change, change);
      beta = torch::maximum(beta, change / moved_sq.sqrt().clamp_min(1e-30));
      for (size_t b = 0; b < buffers.size(); ++b) buffers[b].detach().copy_(saved_buffers[b]);
    }
    {
      torch::NoGradGuard no_grad;
      for (size_t k = 0; k < params.size(); ++k) params[k].copy_(weights[k]);
      for (size_t b = 0; b < buffers.size(); ++b) buffers[b].detach().copy_(saved_buffers[b]);
    }
    gen.set_state(rng);
    ctx.recorder->step_values(
        {"smoothness/loss_range", "smoothness/grad_change", "smoothness/beta"}, ctx.global_step,
        torch::stack({hi - lo, grad_change, beta}));
  }

  int64_t every_;
  double lo_, hi_;
  int64_t points_;
  torch::Tensor batch_x_, batch_y_;
};

}  // namespace

ProbeInfo smoothness_probe() {
  ProbeInfo p;
  p.name = "smoothness";
  p.summary = "loss and gradient change along the gradient (Santurkar et al. 2018, fig. 4)";
  p.defaults = {
      {"enabled", false}, {"every", 50}, {"multipliers", Json::array({0.5, 4.0})}, {"points", 8}};
  p.help = {{"every", "measure every N training steps"},
            {"multipliers",
             "[lo, hi]: step sizes lo..hi times the learning rate (the paper's "
             "[0.5, 4] for VGG)"},
            {"points", "step sizes evenly spaced over the range"}};
  p.check = [](const Json& o, const std::string& where) {
    const std::string at = where + ": key 'probe.smoothness.";
    require(o.at("every").get<int64_t>() >= 1, at + "every'", "must be >= 1");
    const Json& m = o.at("multipliers");
    require(m.size() == 2 && m[0].is_number() && m[1].is_number() && m[0].get<double>() > 0 &&
                m[0].get<double>() <= m[1].get<double>(),
            at + "multipliers'", "must be [lo, hi] with 0 < lo <= hi, got " + m.dump());
    require(o.at("points").get<int64_t>() >= 1, at + "points'", "must be >= 1");
  };
  p.patterns = [](const Json&) { return std::vector<std::string>{}; };
  p.make = [](const Json& o, const ProbeSetup& s) -> std::unique_ptr<train::Observer> {
    return std::make_unique<SmoothnessProbe>(o, s);
  };
  return p;
}

}  // namespace normlab::probe
