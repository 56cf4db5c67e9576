#include "study/step_validation.h"

#include "store/metric_names.h"
#include "train/guards.h"
#include "train/loss.h"

namespace normlab::study {

StepValidation::StepValidation(const RunOptions& lead, FeatureSources& sources, bool prefix_moves)
    : sources_(sources),
      every_(lead.val_every),
      images_(lead.val_sample),
      prefix_moves_(prefix_moves),
      split_(sources.has_split("val") ? "val" : "train") {}

const std::vector<data::Batch>& StepValidation::sample() {
  if (!batches_.empty() && !prefix_moves_) return batches_;
  batches_.clear();
  int64_t taken = 0;
  sources_.for_each(split_, 0, sources_.input_stage(), [&](const data::Batch& b) {
    data::Batch kept{b.x, b.y, {}, {}};
    if (taken + b.y.size(0) > images_) {
      kept.x = b.x.narrow(0, 0, images_ - taken);
      kept.y = b.y.narrow(0, 0, images_ - taken);
    }
    taken += kept.y.size(0);
    batches_.push_back(std::move(kept));
    return taken < images_;
  });
  return batches_;
}

void StepValidation::record(const std::vector<RunState*>& runs, int64_t steps_done) {
  const auto& batches = sample();
  for (RunState* r : runs) {
    if (r->done) continue;
    train::EvalModeGuard eval_mode(*r->model);
    torch::NoGradGuard no_grad;
    torch::Tensor loss_sum, correct;
    int64_t n = 0;
    for (const auto& b : batches) {
      torch::Tensor logits = r->trainer->logits(b.x);
      torch::Tensor loss = train::cross_entropy(logits, b.y).to(torch::kDouble) * b.y.size(0);
      torch::Tensor hits = logits.argmax(1).eq(b.y).sum();
      loss_sum = loss_sum.defined() ? loss_sum + loss : loss;
      correct = correct.defined() ? correct + hits : hits;
      n += b.y.size(0);
    }
    if (n == 0) continue;
    auto& rec = r->trainer->recorder();
    rec.step_value(store::metric::kStepValLoss, steps_done - 1, loss_sum / static_cast<double>(n));
    rec.step_value(store::metric::kStepValAcc, steps_done - 1,
                   correct.to(torch::kDouble) * (100.0 / static_cast<double>(n)));
  }
}

}  // namespace normlab::study
