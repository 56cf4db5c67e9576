#include "probe/grad_norms.h"

namespace normlab::probe {

void GradNormProbe::after_backward(const train::StepContext& ctx) {
  const auto& params = ctx.trainable->params;
  if (names_.empty()) {
    for (const auto& n : ctx.trainable->names) names_.push_back("grad_norm/" + n);
  }
  std::vector<torch::Tensor> norms;
  norms.reserve(params.size());
  for (const auto& p : params) {
    // A parameter unused in this step has no gradient: its norm is 0, as PyTorch reports.
    norms.push_back(p.grad().defined() ? p.grad().detach().norm(2).to(torch::kFloat)
                                       : torch::zeros({}, p.options().dtype(torch::kFloat)));
  }
  ctx.recorder->step_values(names_, ctx.global_step, torch::stack(norms));  // (P)
}

}  // namespace normlab::probe
