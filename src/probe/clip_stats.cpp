// clip: how often clipping acts and what it leaves. Per step the global gradient norm after
// clipping ("clip/post_norm"); per epoch the fraction of steps clipped ("clip/fraction"),
// the mean pre- and post-clip global norms ("clip/pre_norm_mean", "clip/post_norm_mean").
// A step counts as clipped when norm clipping scaled it (pre-clip norm > max_norm) or value
// clipping changed an element (pre-clip max |g| > max_value). Counters stay on the device.
#include "core/error.h"
#include "probe/registry.h"

namespace normlab::probe {
namespace {

torch::Tensor global_norm(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> norms;
  for (const auto& p : params) {
    if (p.grad().defined()) norms.push_back(p.grad().detach().norm(2).to(torch::kFloat));
  }
  if (norms.empty()) return torch::zeros({}, torch::kFloat);
  return torch::stack(norms).norm(2);
}

torch::Tensor max_abs(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> m;
  for (const auto& p : params) {
    if (p.grad().defined()) m.push_back(p.grad().detach().abs().max().to(torch::kFloat));
  }
  if (m.empty()) return torch::zeros({}, torch::kFloat);
  return torch::stack(m).max();
}

class ClipStats : public train::Observer {
 public:
  explicit ClipStats(const ProbeSetup& s) : clip_(s.clip) {}
  void after_backward(const train::StepContext& ctx) override {
    if (clip_.max_value > 0) pre_max_ = max_abs(ctx.trainable->params);
  }
  void after_clip(const train::StepContext& ctx) override {
    torch::Tensor pre = ctx.pre_clip_norm.to(torch::kDouble);
    torch::Tensor post = global_norm(ctx.trainable->params);
    torch::Tensor clipped = torch::zeros({}, pre.options());
    if (clip_.max_norm > 0) clipped = clipped + (pre > clip_.max_norm).to(torch::kDouble);
    if (clip_.max_value > 0) clipped = clipped + (pre_max_ > clip_.max_value).to(torch::kDouble);
    // (steps, clipped, sum pre, sum post) of the epoch
    torch::Tensor row = torch::stack({torch::ones({}, pre.options()), clipped.clamp_max(1), pre,
                                      post.to(pre.device(), torch::kDouble)});
    sums_ = sums_.defined() ? sums_ + row : row;
    ctx.recorder->step_value("clip/post_norm", ctx.global_step, post);
  }
  void on_epoch_end(const train::EpochContext& ctx) override {
    if (!sums_.defined()) return;
    torch::Tensor n = sums_[0].clamp_min(1);
    ctx.recorder->epoch_values({"clip/fraction", "clip/pre_norm_mean", "clip/post_norm_mean"},
                               ctx.epoch, torch::stack({sums_[1], sums_[2], sums_[3]}) / n);
    sums_ = torch::Tensor();
  }

 private:
  train::ClipOptions clip_;
  torch::Tensor pre_max_;
  torch::Tensor sums_;
};

}  // namespace

ProbeInfo clip_probe() {
  ProbeInfo p;
  p.name = "clip";
  p.summary = "fraction of steps clipped and the post-clip global norm, per epoch";
  p.defaults = {{"enabled", false}};
  p.check = [](const Json&, const std::string&) {};
  p.patterns = [](const Json&) { return std::vector<std::string>{}; };
  p.make = [](const Json&, const ProbeSetup& s) -> std::unique_ptr<train::Observer> {
    return std::make_unique<ClipStats>(s);
  };
  return p;
}

}  // namespace normlab::probe
