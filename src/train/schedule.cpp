#include "train/schedule.h"

#include <limits>

#include "store/metric_names.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace normlab::train {
namespace {

// Python's math.pi, which CosineAnnealingLR uses.
constexpr double kPi = 3.141592653589793;
// ReduceLROnPlateau's default eps: a cut smaller than this is not applied.
constexpr double kPlateauEps = 1e-8;

std::string show(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

void check(bool ok, const std::string& key, const std::string& value, const std::string& problem) {
  require(ok, "train.schedule." + key + " = " + value, problem);
}

void validate(const ScheduleOptions& o) {
  const auto names = schedule_names();
  if (std::find(names.begin(), names.end(), o.name) == names.end()) {
    throw Error("train.schedule.name '" + o.name + "'", "unknown learning-rate schedule",
                "use one of: none, step, cosine, plateau");
  }
  check(o.warmup_epochs >= 0, "warmup_epochs", std::to_string(o.warmup_epochs), "must be >= 0");
  check(o.warmup_start_factor >= 0 && o.warmup_start_factor <= 1, "warmup_start_factor",
        show(o.warmup_start_factor), "must be in [0, 1]");
  check(o.step_size >= 1, "step_size", std::to_string(o.step_size), "must be >= 1");
  check(o.gamma > 0, "gamma", show(o.gamma), "must be > 0");
  check(o.min_lr >= 0, "min_lr", show(o.min_lr), "must be >= 0");
  check(o.factor > 0 && o.factor < 1, "factor", show(o.factor), "must be in (0, 1)");
  check(o.patience >= 0, "patience", std::to_string(o.patience), "must be >= 0");
  // In min mode a threshold of 1 or more would make every improvement impossible.
  check(o.threshold >= 0 && o.threshold < 1, "threshold", show(o.threshold), "must be in [0, 1)");
  check(o.cooldown >= 0, "cooldown", std::to_string(o.cooldown), "must be >= 0");
  require(!o.monitor.empty(), "train.schedule.monitor", "must name a recorded value",
          "e.g. \"val/loss\" or \"val/accuracy\"");
}

bool is_better(MonitorMode mode, double threshold, double a, double best) {
  // ReduceLROnPlateau.is_better, threshold_mode "rel"; false for NaN.
  if (mode == MonitorMode::kMin) return a < best * (1. - threshold);
  return a > best * (threshold + 1.);
}

}  // namespace

void describe(ScheduleOptions& o, OptionFields& f) {
  const double inf = std::numeric_limits<double>::infinity();
  f.field("name", o.name, schedule_names());
  f.field("warmup_epochs", o.warmup_epochs, Range{0, inf, ">= 0"});
  f.field("warmup_start_factor", o.warmup_start_factor, Range{0, 1, "in [0, 1]"});
  f.field("step_size", o.step_size, Range{1, inf, "> 0"});
  f.field("gamma", o.gamma, Range{1e-12, 1e12, "> 0"});
  f.field("min_lr", o.min_lr, Range{0, 1e12, ">= 0"});
  f.field("factor", o.factor, Range{1e-12, 0.999999, "in (0, 1)"});
  f.field("patience", o.patience, Range{0, inf, ">= 0"});
  f.field("threshold", o.threshold, Range{0, 1e12, ">= 0"});
  f.field("cooldown", o.cooldown, Range{0, inf, ">= 0"});
  f.field("monitor", o.monitor, store::metric::kMonitorable);
  f.field("mode", o.mode, {"auto", "min", "max"});
}

std::vector<std::string> schedule_names() { return {"none", "step", "cosine", "plateau"}; }

LrSchedule::LrSchedule(ScheduleOptions options, torch::optim::Optimizer& optimizer,
                       int64_t steps_per_epoch, int64_t epochs)
    : options_(std::move(options)),
      optimizer_(&optimizer),
      steps_per_epoch_(steps_per_epoch),
      epochs_(epochs) {
  validate(options_);
  mode_ = resolve_monitor_mode(options_.monitor, options_.mode, "train.schedule.mode");
  require(steps_per_epoch_ >= 1, "train.schedule",
          "needs at least one step per epoch, got " + std::to_string(steps_per_epoch_),
          "use a batch size no larger than the training set");
  require(epochs_ >= 0, "train.epochs = " + std::to_string(epochs_), "must be >= 0");
  for (auto& group : optimizer_->param_groups()) {
    base_lrs_.push_back(group.options().get_lr());
  }
  require(!base_lrs_.empty(), "train.schedule", "the optimizer has no parameter groups");
  lrs_ = base_lrs_;
  plateau_lrs_ = base_lrs_;
  const double inf = std::numeric_limits<double>::infinity();
  best_ = mode_ == MonitorMode::kMin ? inf : -inf;  // torch's mode_worse
}

double LrSchedule::warmup_factor(int64_t s) const {
  const int64_t warmup_steps = options_.warmup_epochs * steps_per_epoch_;
  if (s >= warmup_steps) return 1.0;
  // LinearLR._get_closed_form_lr with end_factor 1, in torch's order of operations.
  const double start = options_.warmup_start_factor;
  return start + (1.0 - start) * static_cast<double>(std::max<int64_t>(s, 0)) /
                     static_cast<double>(warmup_steps);
}

double LrSchedule::scheduled_lr(size_t g, int64_t s) const {
  const double base = base_lrs_[g];
  if (options_.name == "step") {
    return base * std::pow(options_.gamma, static_cast<double>(epochs_done_ / options_.step_size));
  }
  if (options_.name == "plateau") return plateau_lrs_[g];
  if (options_.name == "cosine") {
    const int64_t warmup_steps = options_.warmup_epochs * steps_per_epoch_;
    const int64_t t_max = epochs_ * steps_per_epoch_ - warmup_steps;
    const int64_t t = std::min(s - warmup_steps, t_max);  // past T_max: stay at min_lr
    if (t <= 0) return base;
    // CosineAnnealingLR._get_closed_form_lr, in torch's order of operations.
    const double eta_min = options_.min_lr;
    return eta_min + (base - eta_min) *
                         (1 + std::cos(kPi * static_cast<double>(t) / static_cast<double>(t_max))) /
                         2;
  }
  return base;  // none
}

void LrSchedule::apply(int64_t s) {
  auto& groups = optimizer_->param_groups();
  TORCH_CHECK(groups.size() == base_lrs_.size(), "LrSchedule: the optimizer has ", groups.size(),
              " parameter groups, the schedule was made for ", base_lrs_.size());
  const double warm = warmup_factor(s);
  for (size_t g = 0; g < groups.size(); ++g) {
    lrs_[g] = warm * scheduled_lr(g, s);
    groups[g].options().set_lr(lrs_[g]);
  }
}

void LrSchedule::before_step(int64_t global_step) { apply(global_step); }

void LrSchedule::end_epoch(int64_t epoch, double monitored) {
  epochs_done_ = epoch + 1;
  if (options_.name == "plateau") {
    // ReduceLROnPlateau.step(metrics), line by line.
    if (is_better(mode_, options_.threshold, monitored, best_)) {
      best_ = monitored;
      num_bad_epochs_ = 0;
    } else {
      num_bad_epochs_ += 1;
    }
    if (cooldown_counter_ > 0) {
      cooldown_counter_ -= 1;
      num_bad_epochs_ = 0;  // bad epochs in cooldown are ignored
    }
    if (num_bad_epochs_ > options_.patience) {
      for (double& lr : plateau_lrs_) {
        const double old_lr = lr;
        const double new_lr = std::max(old_lr * options_.factor, options_.min_lr);
        if (old_lr - new_lr > kPlateauEps) lr = new_lr;
      }
      cooldown_counter_ = options_.cooldown;
      num_bad_epochs_ = 0;
    }
  }
  apply(epochs_done_ * steps_per_epoch_);
}

double LrSchedule::factor() const {
  const double base = base_lrs_.back();
  return base > 0 ? lrs_.back() / base : 1.0;
}

nlohmann::json LrSchedule::state() const {
  nlohmann::json s = {
      {"name", options_.name}, {"base_lrs", base_lrs_}, {"epochs_done", epochs_done_}};
  if (options_.name == "plateau") {
    s["plateau"] = {{"mode", mode_ == MonitorMode::kMin ? "min" : "max"},
                    {"best", double_to_json(best_)},
                    {"num_bad_epochs", num_bad_epochs_},
                    {"cooldown_counter", cooldown_counter_},
                    {"lrs", plateau_lrs_}};
  }
  return s;
}

void LrSchedule::load_state(const nlohmann::json& s) {
  const std::string what = "learning-rate schedule state";
  const std::string hint = "the checkpoint was written with other train.schedule settings";
  try {
    const auto name = s.at("name").get<std::string>();
    require(name == options_.name, what,
            "was written for schedule '" + name + "', this run uses '" + options_.name + "'", hint);
    auto base_lrs = s.at("base_lrs").get<std::vector<double>>();
    require(base_lrs.size() == base_lrs_.size(), what,
            "has " + std::to_string(base_lrs.size()) + " parameter groups, the optimizer " +
                std::to_string(base_lrs_.size()),
            hint);
    const auto epochs_done = s.at("epochs_done").get<int64_t>();
    require(epochs_done >= 0, what, "has a negative epoch count");
    double best = best_;
    int64_t num_bad = 0;
    int64_t cooldown = 0;
    std::vector<double> plateau_lrs = base_lrs;
    if (options_.name == "plateau") {
      const auto& p = s.at("plateau");
      const auto mode = p.at("mode").get<std::string>();
      require(mode == (mode_ == MonitorMode::kMin ? "min" : "max"), what,
              "was written for mode '" + mode + "'", hint);
      best = double_from_json(p.at("best"), what + " plateau.best");
      num_bad = p.at("num_bad_epochs").get<int64_t>();
      cooldown = p.at("cooldown_counter").get<int64_t>();
      plateau_lrs = p.at("lrs").get<std::vector<double>>();
      require(plateau_lrs.size() == base_lrs.size(), what, "plateau.lrs has the wrong size");
    }
    // Commit only once everything has been read.
    base_lrs_ = std::move(base_lrs);
    epochs_done_ = epochs_done;
    best_ = best;
    num_bad_epochs_ = num_bad;
    cooldown_counter_ = cooldown;
    plateau_lrs_ = std::move(plateau_lrs);
  } catch (const nlohmann::json::exception& e) {
    throw Error(what, std::string("is malformed: ") + e.what(), hint);
  }
  apply(epochs_done_ * steps_per_epoch_);
}

}  // namespace normlab::train
