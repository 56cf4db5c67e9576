// grad_norms: L2 norms of the gradients of every selected parameter tensor and of every layer
// (the norm over the layer's tensors), every step, before clipping ("grad_norm/pre/<item>")
// and, when the run clips, after it ("grad_norm/post/<item>"). One stacked device tensor per
// step goes to the recorder: no host synchronisation.
#include <map>

#include "core/error.h"
#include "probe/registry.h"
#include "probe/selection.h"

namespace normlab::probe {
namespace {

class GradNorms : public train::Observer {
 public:
  GradNorms(const Json& o, const ProbeSetup& s)
      : clips_(s.clip.max_norm > 0 || s.clip.max_value > 0) {
    Selection sel =
        select_params(*s.model, *s.trainable, o.at("params"), "probe.grad_norms.params");
    const bool layers = o.at("layers").get<bool>();
    std::vector<int64_t> layer_of_param;
    std::map<std::string, int64_t> layer_index;
    for (const auto& item : sel.params) {
      params_.push_back(item.params.front());
      names_.push_back(item.name);
      auto [it, fresh] =
          layer_index.emplace(layer_of(item.name), static_cast<int64_t>(layer_index.size()));
      if (fresh) layer_names_.push_back(it->first);
      layer_of_param.push_back(it->second);
    }
    if (layers) layer_index_ = torch::tensor(layer_of_param, torch::kLong);
    for (const char* stage : {"pre", "post"}) {
      auto& out = stage[1] == 'r' ? pre_names_ : post_names_;
      for (const auto& n : names_) out.push_back(std::string("grad_norm/") + stage + "/" + n);
      if (layers) {
        for (const auto& n : layer_names_)
          out.push_back(std::string("grad_norm/") + stage + "/" + n);
      }
    }
  }
  void after_backward(const train::StepContext& ctx) override { record(ctx, pre_names_); }
  void after_clip(const train::StepContext& ctx) override {
    if (clips_) record(ctx, post_names_);
  }

 private:
  void record(const train::StepContext& ctx, const std::vector<std::string>& names) {
    std::vector<torch::Tensor> norms;
    norms.reserve(params_.size());
    for (const auto& p : params_) {
      // A parameter unused in this step has no gradient: its norm is 0, as PyTorch reports.
      norms.push_back(p.grad().defined() ? p.grad().detach().norm(2).to(torch::kFloat)
                                         : torch::zeros({}, p.options().dtype(torch::kFloat)));
    }
    torch::Tensor n = torch::stack(norms);  // (P)
    if (layer_index_.defined()) {
      torch::Tensor idx = layer_index_.to(n.device());
      torch::Tensor sq = torch::zeros({static_cast<int64_t>(layer_names_.size())}, n.options())
                             .index_add_(0, idx, n * n);
      n = torch::cat({n, sq.sqrt()});  // (P + L)
    }
    ctx.recorder->step_values(names, ctx.global_step, n);
  }

  bool clips_;
  std::vector<torch::Tensor> params_;
  std::vector<std::string> names_, layer_names_, pre_names_, post_names_;
  torch::Tensor layer_index_;  // (P) layer of each parameter
};

}  // namespace

ProbeInfo grad_norms_probe() {
  ProbeInfo p;
  p.name = "grad_norms";
  p.summary = "L2 norm of each parameter's and layer's gradient, every step, pre/post clip";
  p.defaults = {{"enabled", true}, {"params", Json::array({"trainable"})}, {"layers", true}};
  p.help = {{"params", "\"trainable\", \"all\" or a list of module-path patterns"},
            {"layers", "also record the norm per layer (module)"}};
  p.check = [](const Json& o, const std::string& where) {
    check_params_option(o.at("params"), where + ": key 'probe.grad_norms.params'");
  };
  p.patterns = [](const Json& o) { return params_patterns(o.at("params")); };
  p.make = [](const Json& o, const ProbeSetup& s) -> std::unique_ptr<train::Observer> {
    return std::make_unique<GradNorms>(o, s);
  };
  return p;
}

}  // namespace normlab::probe
