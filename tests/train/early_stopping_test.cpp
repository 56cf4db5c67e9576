// Early stopping with Keras' EarlyStopping semantics: the exact epoch at which it stops.
#include "train/early_stopping.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"

namespace normlab::train {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

EarlyStoppingOptions with_patience(int64_t patience) {
  EarlyStoppingOptions o;
  o.patience = patience;
  return o;
}

// Feeds `values` (one per epoch from 0) and returns the first epoch that said stop, or -1.
int64_t stop_epoch(EarlyStopping& stopper, const std::vector<double>& values) {
  for (size_t epoch = 0; epoch < values.size(); ++epoch) {
    if (stopper.update(static_cast<int64_t>(epoch), values[epoch]).stop) {
      return static_cast<int64_t>(epoch);
    }
  }
  return -1;
}

int64_t stop_epoch(const EarlyStoppingOptions& options, const std::vector<double>& values) {
  EarlyStopping stopper(options);
  return stop_epoch(stopper, values);
}

TEST(EarlyStopping, PatienceZeroIsOffButTracksTheBest) {
  EarlyStopping stopper(with_patience(0));
  EXPECT_FALSE(stopper.enabled());
  EXPECT_EQ(stop_epoch(stopper, {1.0, 0.5, 0.7, 0.8, 0.9, 1.0, 1.1}), -1);
  EXPECT_EQ(stopper.best_epoch(), 1);
  EXPECT_EQ(stopper.best_value(), 0.5);
  EXPECT_EQ(stopper.wait(), 5);
  EXPECT_EQ(stopper.stopped_epoch(), -1);
}

TEST(EarlyStopping, StopsAtThePatiencethBadEpochInARow) {
  //                                 0    1    2     3     4     5     6
  const std::vector<double> losses = {1.0, 0.9, 0.95, 0.92, 0.91, 0.93, 0.8};
  EXPECT_TRUE(EarlyStopping(with_patience(1)).enabled());
  EXPECT_EQ(stop_epoch(with_patience(1), losses), 2);
  EXPECT_EQ(stop_epoch(with_patience(3), losses), 4);
  EXPECT_EQ(stop_epoch(with_patience(5), losses), -1);  // epoch 6 improves in time

  // An improvement resets the count: bad at 1, 2; better at 3; bad at 4, 5, 6.
  EarlyStopping stopper(with_patience(3));
  EXPECT_EQ(stop_epoch(stopper, {1.0, 1.1, 1.2, 0.9, 1.0, 1.0, 1.0, 0.1}), 6);
  EXPECT_EQ(stopper.best_epoch(), 3);
  EXPECT_EQ(stopper.best_value(), 0.9);
  EXPECT_EQ(stopper.stopped_epoch(), 6);
}

TEST(EarlyStopping, DecisionReportsImprovements) {
  EarlyStopping stopper(with_patience(1));
  auto d = stopper.update(0, 1.0);
  EXPECT_TRUE(d.improved);
  EXPECT_FALSE(d.stop);
  d = stopper.update(1, 1.0);  // equal is not better
  EXPECT_FALSE(d.improved);
  EXPECT_TRUE(d.stop);
}

TEST(EarlyStopping, MinDeltaMustBeExceeded) {
  auto o = with_patience(2);
  o.min_delta = 0.05;
  // 0.96 is within 0.05 of 1.0 (bad); 0.94 beats it by more (best); 0.93 and 0.92 do not
  // beat 0.94 by more than 0.05.
  EarlyStopping stopper(o);
  EXPECT_EQ(stop_epoch(stopper, {1.0, 0.96, 0.94, 0.93, 0.92}), 4);
  EXPECT_EQ(stopper.best_epoch(), 2);
  EXPECT_EQ(stop_epoch(with_patience(2), {1.0, 0.96, 0.94, 0.93, 0.92}), -1);  // no delta
}

TEST(EarlyStopping, AccuracyIsMaximised) {
  EarlyStoppingOptions o = with_patience(2);
  o.monitor = "val/accuracy";  // auto: max
  EarlyStopping stopper(o);
  EXPECT_EQ(stop_epoch(stopper, {50, 60, 59, 60, 61}), 3);
  EXPECT_EQ(stopper.best_epoch(), 1);
  EXPECT_EQ(stopper.best_value(), 60);

  o.monitor = "val/error";
  o.mode = "min";  // an explicit mode wins over the name
  EXPECT_EQ(stop_epoch(o, {50, 60, 59, 60, 61}), 2);
}

TEST(EarlyStopping, NaNNeverImproves) {
  EarlyStopping stopper(with_patience(2));
  EXPECT_EQ(stop_epoch(stopper, {1.0, kNaN, kNaN, 0.5}), 2);
  EXPECT_EQ(stopper.best_epoch(), 0);
  EXPECT_EQ(stopper.best_value(), 1.0);

  // A NaN first epoch: nothing to keep, and (as in Keras) epoch 0 never stops.
  EarlyStopping first(with_patience(1));
  auto d = first.update(0, kNaN);
  EXPECT_FALSE(d.improved);
  EXPECT_FALSE(d.stop);
  EXPECT_EQ(first.best_epoch(), -1);
  EXPECT_TRUE(std::isinf(first.best_value()));
  d = first.update(1, kNaN);
  EXPECT_TRUE(d.stop);
}

TEST(EarlyStopping, StateRoundTripContinuesIdentically) {
  const std::vector<double> losses = {1.0, 0.9, 0.95, 0.8, 0.85, 0.86, 0.87, 0.88, 0.7};
  for (size_t mid = 0; mid <= losses.size(); ++mid) {
    SCOPED_TRACE(mid);
    EarlyStopping original(with_patience(3));
    EarlyStopping resumed(with_patience(3));
    for (size_t e = 0; e < mid; ++e) original.update(static_cast<int64_t>(e), losses[e]);
    resumed.load_state(nlohmann::json::parse(original.state().dump()));  // through text
    EXPECT_EQ(resumed.state(), original.state());
    for (size_t e = mid; e < losses.size(); ++e) {
      const auto a = original.update(static_cast<int64_t>(e), losses[e]);
      const auto b = resumed.update(static_cast<int64_t>(e), losses[e]);
      EXPECT_EQ(a.improved, b.improved) << e;
      EXPECT_EQ(a.stop, b.stop) << e;
    }
    EXPECT_EQ(resumed.best_epoch(), original.best_epoch());
    EXPECT_EQ(resumed.best_value(), original.best_value());
    EXPECT_EQ(resumed.stopped_epoch(), 6);
  }
}

TEST(EarlyStopping, StateKeepsInfinitiesAndRefusesOtherMonitors) {
  EarlyStopping fresh(with_patience(2));
  const auto state = nlohmann::json::parse(fresh.state().dump());
  EXPECT_EQ(state.at("best"), "inf");
  EarlyStopping loaded(with_patience(2));
  loaded.load_state(state);
  EXPECT_EQ(loaded.best_value(), std::numeric_limits<double>::infinity());

  EarlyStoppingOptions acc = with_patience(2);
  acc.monitor = "val/accuracy";
  EarlyStopping other(acc);
  EXPECT_THROW(other.load_state(state), Error);
  EXPECT_THROW(loaded.load_state(nlohmann::json::object()), Error);
  auto broken = state;
  broken["best"] = "lots";
  EXPECT_THROW(loaded.load_state(broken), Error);
}

TEST(EarlyStopping, OptionsAreChecked) {
  const auto message = [](const EarlyStoppingOptions& o) -> std::string {
    try {
      EarlyStopping stopper(o);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message(with_patience(-1)).find("train.early_stopping.patience"), std::string::npos);
  auto o = with_patience(1);
  o.min_delta = -0.1;
  EXPECT_NE(message(o).find("train.early_stopping.min_delta"), std::string::npos);
  o = with_patience(1);
  o.mode = "maximum";
  EXPECT_NE(message(o).find("train.early_stopping.mode 'maximum'"), std::string::npos);
  o = with_patience(1);
  o.monitor = "";
  EXPECT_NE(message(o).find("train.early_stopping.monitor"), std::string::npos);
}

TEST(EarlyStopping, AutoModeIsMinForLossesOnly) {
  EXPECT_EQ(resolve_monitor_mode("val/loss", "auto", "k"), MonitorMode::kMin);
  EXPECT_EQ(resolve_monitor_mode("train/loss", "auto", "k"), MonitorMode::kMin);
  EXPECT_EQ(resolve_monitor_mode("val/accuracy", "auto", "k"), MonitorMode::kMax);
  EXPECT_EQ(resolve_monitor_mode("loss/val", "auto", "k"), MonitorMode::kMax);
  EXPECT_EQ(resolve_monitor_mode("val/accuracy", "min", "k"), MonitorMode::kMin);
  EXPECT_EQ(resolve_monitor_mode("val/loss", "max", "k"), MonitorMode::kMax);
  EXPECT_THROW(resolve_monitor_mode("val/loss", "", "k"), Error);
}

}  // namespace
}  // namespace normlab::train
