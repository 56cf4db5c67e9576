// Learning-rate schedules by name ("none", "step", "cosine", "plateau"), each with an optional
// linear warmup, matching torch.optim.lr_scheduler (tests/train/schedule_test.cpp compares
// against fixtures from scripts/gen_schedule_fixtures.py).
//
// Every parameter group keeps its own base learning rate (the one it had when the schedule
// was made: S0 trains features.18 at 1e-5 and the head at 1e-3). During global step s, group
// g trains at
//     lr_g(s) = warmup(s) * schedule_g
//     warmup(s) = start + (1 - start) * s / W  for s < W = warmup_epochs * steps_per_epoch,
//                 else 1                       (torch LinearLR(start, total_iters=W), per step)
// and schedule_g is
//     none:    base_g
//     step:    base_g * gamma^floor(e / step_size), e = completed epochs      (torch StepLR)
//     cosine:  min_lr + (base_g - min_lr) * (1 + cos(pi * t / T)) / 2, t = s - W (0 during
//              warmup), T = epochs * steps_per_epoch - W: CosineAnnealingLR(T_max = T,
//              eta_min = min_lr) stepped per step after the warmup, in closed form; past
//              the planned steps it stays at min_lr (torch's would rise again)
//     plateau: ReduceLROnPlateau (rel threshold), stepped per epoch on the monitored value:
//              after more than `patience` bad epochs, new = max(old * factor, min_lr), kept
//              only if old - new > 1e-8 (torch's eps), then `cooldown` epochs ignored.
// min_lr is one value for all groups, as in torch (a group whose base is below min_lr is
// raised towards it by cosine and never cut by plateau). Plateau cuts the scheduled rate,
// not the warmed-up one.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "core/option_fields.h"

#include "train/early_stopping.h"

namespace normlab::train {

struct ScheduleOptions {
  std::string name = "none";  // none | step | cosine | plateau
  // Linear warmup from lr * warmup_start_factor to lr over warmup_epochs, per step, before
  // any schedule. The default start of 0 is the common convention (e.g. Hugging Face's
  // get_linear_schedule_with_warmup): the first step runs at lr 0, so a warmup of W steps
  // makes W - 1 updates below the full rate; torch's LinearLR default would be 1/3.
  int64_t warmup_epochs = 0;
  double warmup_start_factor = 0.0;  // in [0, 1]
  int64_t step_size = 10;            // step: epochs between cuts, >= 1
  double gamma = 0.1;                // step: multiplier per cut, > 0
  double min_lr = 0;                 // cosine eta_min and plateau floor, per group, >= 0
  double factor = 0.1;               // plateau: multiplier per cut, in (0, 1)
  int64_t patience = 10;             // plateau: bad epochs tolerated before a cut
  double threshold = 1e-4;           // plateau: relative improvement that counts
  int64_t cooldown = 0;              // plateau: epochs ignored after a cut
  std::string monitor = "val/loss";  // plateau: the value passed to end_epoch
  std::string mode = "auto";         // plateau: auto | min | max (auto: min for "...loss")
};

std::vector<std::string> schedule_names();

// The fields of train.schedule: their defaults are the struct's (core/option_fields.h).
void describe(ScheduleOptions& o, OptionFields& f);

class LrSchedule {
 public:
  // Captures each parameter group's current learning rate as its base; does not change the
  // optimizer. Throws Error naming train.schedule.<key> for an unknown name or mode, or a
  // value out of range.
  LrSchedule(ScheduleOptions options, torch::optim::Optimizer& optimizer, int64_t steps_per_epoch,
             int64_t epochs);

  // Sets every group's learning rate for global step `global_step` (0-based, counting from
  // the start of training). Call before each optimizer step.
  void before_step(int64_t global_step);

  // After epoch `epoch` (0-based) with its monitored value (read by plateau only; NaN counts
  // as a bad epoch, as in torch). Sets the learning rates for the first step of the next
  // epoch, global step (epoch + 1) * steps_per_epoch.
  void end_epoch(int64_t epoch, double monitored);

  // Current learning rate over base learning rate of the last group: the default group
  // (train.optimizer.lr) whenever it holds parameters, since make_optimizer puts it last.
  // Recorded as "lr/factor".
  double factor() const;
  const std::vector<double>& lrs() const { return lrs_; }  // what was last set, per group
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  const ScheduleOptions& options() const { return options_; }

  // Everything the learning rates depend on besides the options: base learning rates,
  // completed epochs, and plateau's best value, bad-epoch count, cooldown counter and
  // current per-group rates. Loading it (into a schedule made with the same options and as
  // many groups) continues bit-identically, whatever the optimizer's rates were when this
  // schedule was made. load_state throws Error for a state that does not fit.
  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 private:
  void apply(int64_t global_step);
  double warmup_factor(int64_t global_step) const;
  double scheduled_lr(size_t group, int64_t global_step) const;

  ScheduleOptions options_;
  torch::optim::Optimizer* optimizer_;  // not owned; outlives the schedule
  int64_t steps_per_epoch_;
  int64_t epochs_;
  MonitorMode mode_ = MonitorMode::kMin;
  std::vector<double> base_lrs_;
  std::vector<double> lrs_;
  int64_t epochs_done_ = 0;
  // ReduceLROnPlateau's state (torch names: best, num_bad_epochs, cooldown_counter).
  double best_ = 0;
  int64_t num_bad_epochs_ = 0;
  int64_t cooldown_counter_ = 0;
  std::vector<double> plateau_lrs_;
};

}  // namespace normlab::train
