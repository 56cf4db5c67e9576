#include "train/early_stopping.h"

#include <limits>

#include "store/metric_names.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace normlab::train {

void describe(EarlyStoppingOptions& o, OptionFields& f) {
  const double inf = std::numeric_limits<double>::infinity();
  f.field("patience", o.patience, Range{0, inf, ">= 0"});
  f.field("monitor", o.monitor, store::metric::kMonitorable);
  f.field("mode", o.mode, {"auto", "min", "max"});
  f.field("min_delta", o.min_delta, Range{0, 1e12, ">= 0"});
  f.field("restore_best", o.restore_best);
}

MonitorMode resolve_monitor_mode(const std::string& monitor, const std::string& mode,
                                 const std::string& key) {
  if (mode == "min") return MonitorMode::kMin;
  if (mode == "max") return MonitorMode::kMax;
  if (mode == "auto") {
    const std::string suffix = "loss";
    const bool loss = monitor.size() >= suffix.size() &&
                      monitor.compare(monitor.size() - suffix.size(), suffix.size(), suffix) == 0;
    return loss ? MonitorMode::kMin : MonitorMode::kMax;
  }
  throw Error(key + " '" + mode + "'", "unknown mode",
              "use one of: auto (min for names ending in \"loss\", else max), min, max");
}

nlohmann::json double_to_json(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return value;
}

double double_from_json(const nlohmann::json& value, const std::string& what) {
  if (value.is_number()) return value.get<double>();
  if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
  }
  throw Error(what, "expected a number, \"nan\", \"inf\" or \"-inf\", got " + value.dump());
}

EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : options_(std::move(options)) {
  require(options_.patience >= 0,
          "train.early_stopping.patience = " + std::to_string(options_.patience),
          "must be >= 0 (0 turns early stopping off)");
  if (!(options_.min_delta >= 0)) {
    std::ostringstream v;
    v << options_.min_delta;
    throw Error("train.early_stopping.min_delta = " + v.str(), "must be >= 0");
  }
  require(!options_.monitor.empty(), "train.early_stopping.monitor", "must name a recorded value",
          "e.g. \"val/loss\" or \"val/accuracy\"");
  mode_ = resolve_monitor_mode(options_.monitor, options_.mode, "train.early_stopping.mode");
  const double inf = std::numeric_limits<double>::infinity();
  best_ = mode_ == MonitorMode::kMin ? inf : -inf;  // Keras: np.inf / -np.inf
}

EarlyStopping::Decision EarlyStopping::update(int64_t epoch, double value) {
  // Keras EarlyStopping.on_epoch_end and _is_improvement: monitor_op(current - min_delta,
  // best) with min_delta negated in min mode. Comparisons with NaN are false.
  wait_ += 1;
  const bool improved = mode_ == MonitorMode::kMin ? value - (-options_.min_delta) < best_
                                                   : value - options_.min_delta > best_;
  if (improved) {
    best_ = value;
    best_epoch_ = epoch;
    wait_ = 0;
    return {true, false};
  }
  const bool stop = enabled() && wait_ >= options_.patience && epoch > 0;
  if (stop && stopped_epoch_ < 0) stopped_epoch_ = epoch;
  return {false, stop};
}

nlohmann::json EarlyStopping::state() const {
  return {{"monitor", options_.monitor},
          {"mode", mode_ == MonitorMode::kMin ? "min" : "max"},
          {"best", double_to_json(best_)},
          {"best_epoch", best_epoch_},
          {"wait", wait_},
          {"stopped_epoch", stopped_epoch_}};
}

void EarlyStopping::load_state(const nlohmann::json& s) {
  const std::string what = "early-stopping state";
  const std::string hint = "the checkpoint was written with other train.early_stopping settings";
  try {
    const auto monitor = s.at("monitor").get<std::string>();
    const auto mode = s.at("mode").get<std::string>();
    require(monitor == options_.monitor, what, "was written for monitor '" + monitor + "'", hint);
    require(mode == (mode_ == MonitorMode::kMin ? "min" : "max"), what,
            "was written for mode '" + mode + "'", hint);
    const double best = double_from_json(s.at("best"), what + " best");
    const auto best_epoch = s.at("best_epoch").get<int64_t>();
    const auto wait = s.at("wait").get<int64_t>();
    const auto stopped_epoch = s.at("stopped_epoch").get<int64_t>();
    require(wait >= 0, what, "has a negative wait count");
    best_ = best;
    best_epoch_ = best_epoch;
    wait_ = wait;
    stopped_epoch_ = stopped_epoch;
  } catch (const nlohmann::json::exception& e) {
    throw Error(what, std::string("is malformed: ") + e.what(), hint);
  }
}

}  // namespace normlab::train
