#include "study/group_eval.h"

#include <memory>

#include "core/progress.h"

#include "train/autocast.h"
#include "train/guards.h"

namespace normlab::study {

std::vector<Evaluation> evaluate_runs(const std::vector<RunState*>& who, FeatureSource& source,
                                      models::ClassifierImpl& prefix, const std::string& split,
                                      int64_t num_classes, torch::Device device,
                                      const RunOptions& lead, EngineTiming& timing, bool progress) {
  std::vector<std::unique_ptr<train::EvalModeGuard>> guards;
  guards.push_back(std::make_unique<train::EvalModeGuard>(prefix));
  std::vector<train::EvalAccumulator> tta_acc, plain_acc;
  for (RunState* r : who) {
    guards.push_back(std::make_unique<train::EvalModeGuard>(*r->model));
    tta_acc.emplace_back(num_classes, device);
    plain_acc.emplace_back(num_classes, device);
  }
  torch::NoGradGuard no_grad;
  train::AutocastGuard autocast(device, lead.precision);
  const bool tta = lead.tta;
  source.start_epoch(0);
  ProgressOptions po;
  po.label = "evaluating " + std::to_string(who.size()) + " run(s) on " + split;
  po.epochs = 0;
  po.steps_per_epoch = source.batches_per_epoch();
  po.enabled = progress;
  Progress bar(po);
  int64_t step = 0;
  torch::Tensor h, h_flip;
  train::Targets t;
  while (source.next(h, tta ? &h_flip : nullptr, t)) {
    for (size_t i = 0; i < who.size(); ++i) {
      torch::Tensor logits = who[i]->trainer->logits(h).to(torch::kFloat);  // (B, K)
      plain_acc[i].add(logits, t.y);
      if (tta) {
        logits = 0.5 * (logits + who[i]->trainer->logits(h_flip).to(torch::kFloat));
        tta_acc[i].add(logits, t.y);
      }
    }
    timing.eval_samples += t.y.size(0) * static_cast<int64_t>(who.size());
    bar.step(0, ++step, t.y.size(0));
  }
  bar.finish("");
  std::vector<Evaluation> out;
  for (size_t i = 0; i < who.size(); ++i) {
    Evaluation e;
    e.plain = plain_acc[i].result(split);
    e.reported = tta ? tta_acc[i].result(split) : e.plain;
    out.push_back(e);
  }
  return out;
}

}  // namespace normlab::study
