// A minimal epoch loop over a Batcher for unit tests of the trainer and probes: the study
// engine (src/study/lockstep.cpp) owns the real loop; these tests exercise the trainer's one
// step and its hooks without the engine.
#pragma once

#include "data/batcher.h"
#include "train/guards.h"
#include "train/trainer.h"

namespace normlab::testing {

inline train::EpochStats train_epoch(train::Trainer& t, data::Batcher& b, int64_t epoch,
                                     train::EvalBatches* eval = nullptr) {
  b.start_epoch(epoch);
  t.begin_epoch(epoch, b.batches_per_epoch());
  data::Batch batch;
  while (b.next(batch)) t.train_step(batch.x, train::Targets{batch.y, {}, {}});
  train::EpochStats s = t.end_epoch();
  t.notify_epoch_end(epoch, eval);
  return s;
}

inline train::EvalResult evaluate(train::Trainer& t, data::Batcher& b, const std::string& split) {
  train::EvalModeGuard eval_mode(*t.model());
  torch::NoGradGuard no_grad;
  b.start_epoch(0);
  train::EvalAccumulator acc(t.model()->options().num_classes, torch::kCPU);
  data::Batch batch;
  while (b.next(batch)) acc.add(t.logits(batch.x), batch.y);
  train::EvalResult r = acc.result(split);
  t.notify_evaluation(r, 0);
  return r;
}

}  // namespace normlab::testing
