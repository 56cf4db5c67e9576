// Learning-rate schedules against torch.optim.lr_scheduler: the fixtures come from
// scripts/gen_schedule_fixtures.py (torch 1.13), one JSON list of cases with the learning
// rate of both parameter groups at every step.
#include "train/schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <utility>

#include "core/error.h"
#include "core/files.h"

namespace normlab::train {
namespace {

namespace fs = std::filesystem;

// Relative tolerance of the comparison with torch: its recursive StepLR and
// CosineAnnealingLR drift from the closed forms by about 1e-15.
constexpr double kRelTol = 1e-12;

fs::path fixture_dir() {
  // ctest sets NORMLAB_FIXTURES; when the binary is run by hand, fall back to the source tree.
  if (const char* env = std::getenv("NORMLAB_FIXTURES")) return fs::path(env) / "schedule";
  return fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "schedule";
}

const nlohmann::json& cases() {
  static const nlohmann::json all =
      nlohmann::json::parse(read_file_text((fixture_dir() / "schedules.json").string()));
  return all;
}

ScheduleOptions options_from(const nlohmann::json& j) {
  ScheduleOptions o;
  o.name = j.value("name", o.name);
  o.warmup_epochs = j.value("warmup_epochs", o.warmup_epochs);
  o.warmup_start_factor = j.value("warmup_start_factor", o.warmup_start_factor);
  o.step_size = j.value("step_size", o.step_size);
  o.gamma = j.value("gamma", o.gamma);
  o.min_lr = j.value("min_lr", o.min_lr);
  o.factor = j.value("factor", o.factor);
  o.patience = j.value("patience", o.patience);
  o.threshold = j.value("threshold", o.threshold);
  o.cooldown = j.value("cooldown", o.cooldown);
  o.monitor = j.value("monitor", o.monitor);
  o.mode = j.value("mode", o.mode);
  return o;
}

// An SGD optimizer with one single-tensor group per learning rate.
std::unique_ptr<torch::optim::SGD> make_sgd(const std::vector<double>& lrs) {
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (double lr : lrs) {
    groups.emplace_back(std::vector<torch::Tensor>{torch::zeros({1}, torch::requires_grad())},
                        std::make_unique<torch::optim::SGDOptions>(lr));
  }
  return std::make_unique<torch::optim::SGD>(std::move(groups),
                                             torch::optim::SGDOptions(lrs.front()));
}

std::vector<double> current_lrs(torch::optim::Optimizer& opt) {
  std::vector<double> out;
  for (auto& g : opt.param_groups()) out.push_back(g.options().get_lr());
  return out;
}

double monitored(const nlohmann::json& c, int64_t epoch) {
  const auto& v = c.at("monitored").at(epoch);
  return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.get<double>();
}

void expect_lrs_near(const std::vector<double>& actual, const nlohmann::json& expected,
                     const std::string& where) {
  ASSERT_EQ(actual.size(), expected.size()) << where;
  for (size_t g = 0; g < actual.size(); ++g) {
    const double want = expected.at(g).get<double>();
    EXPECT_NEAR(actual[g], want, kRelTol * std::abs(want)) << where << " group " << g;
  }
}

// Runs epochs [from, epochs) of case `c` and compares every step with the fixture; returns
// the learning rates set at every step, for bit-identity checks.
std::vector<std::vector<double>> run_and_compare(const nlohmann::json& c, LrSchedule& schedule,
                                                 torch::optim::Optimizer& opt, int64_t from) {
  const auto spe = c.at("steps_per_epoch").get<int64_t>();
  const auto epochs = c.at("epochs").get<int64_t>();
  const auto& lr = c.at("lr");
  std::vector<std::vector<double>> seen;
  for (int64_t epoch = from; epoch < epochs; ++epoch) {
    for (int64_t i = 0; i < spe; ++i) {
      const int64_t step = epoch * spe + i;
      schedule.before_step(step);
      seen.push_back(current_lrs(opt));
      expect_lrs_near(seen.back(), lr.at(step), "step " + std::to_string(step));
      EXPECT_EQ(schedule.lrs(), seen.back());
    }
    schedule.end_epoch(epoch, monitored(c, epoch));
    if (epoch + 1 < epochs) {  // the next epoch's first rate is set right away
      expect_lrs_near(current_lrs(opt), lr.at((epoch + 1) * spe),
                      "after end_epoch " + std::to_string(epoch));
    }
  }
  return seen;
}

TEST(ScheduleParity, EveryFixtureCaseMatchesTorch) {
  ASSERT_GE(cases().size(), 9u);
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const auto base = c.at("base_lrs").get<std::vector<double>>();
    auto opt = make_sgd(base);
    LrSchedule schedule(options_from(c.at("options")), *opt, c.at("steps_per_epoch").get<int64_t>(),
                        c.at("epochs").get<int64_t>());
    EXPECT_EQ(schedule.base_lrs(), base);
    EXPECT_EQ(current_lrs(*opt), base);  // making the schedule changes nothing
    run_and_compare(c, schedule, *opt, 0);
  }
}

TEST(ScheduleState, RoundTripMidwayContinuesBitIdentically) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const auto base = c.at("base_lrs").get<std::vector<double>>();
    const auto options = options_from(c.at("options"));
    const auto spe = c.at("steps_per_epoch").get<int64_t>();
    const auto epochs = c.at("epochs").get<int64_t>();
    const int64_t mid = epochs / 2;

    auto opt = make_sgd(base);
    LrSchedule schedule(options, *opt, spe, epochs);
    for (int64_t epoch = 0; epoch < mid; ++epoch) {
      for (int64_t i = 0; i < spe; ++i) schedule.before_step(epoch * spe + i);
      schedule.end_epoch(epoch, monitored(c, epoch));
    }
    // Through text, as a checkpoint stores it.
    const auto saved = nlohmann::json::parse(schedule.state().dump());

    // The resumed optimizer holds other rates (as after loading optimizer state): the base
    // rates must come from the saved state, not from it.
    std::vector<double> other = base;
    for (double& lr : other) lr *= 0.37;
    auto resumed_opt = make_sgd(other);
    LrSchedule resumed(options, *resumed_opt, spe, epochs);
    resumed.load_state(saved);
    EXPECT_EQ(resumed.base_lrs(), base);
    EXPECT_EQ(resumed.state(), schedule.state());
    EXPECT_EQ(current_lrs(*resumed_opt), current_lrs(*opt));

    const auto original = run_and_compare(c, schedule, *opt, mid);
    const auto continued = run_and_compare(c, resumed, *resumed_opt, mid);
    EXPECT_EQ(original, continued);  // bit-identical, not merely close
  }
}

TEST(ScheduleState, PlateauStateHoldsTorchCounters) {
  auto opt = make_sgd({1e-3});
  ScheduleOptions o;
  o.name = "plateau";
  o.patience = 1;
  o.cooldown = 3;
  LrSchedule schedule(o, *opt, 1, 10);
  auto s = schedule.state();
  EXPECT_EQ(s.at("plateau").at("best"), "inf");  // JSON has no infinity
  schedule.end_epoch(0, 1.0);
  schedule.end_epoch(1, 1.0);
  schedule.end_epoch(2, 1.0);  // second bad epoch > patience 1: cut, cooldown starts
  s = schedule.state();
  EXPECT_EQ(s.at("epochs_done"), 3);
  EXPECT_EQ(s.at("plateau").at("best").get<double>(), 1.0);
  EXPECT_EQ(s.at("plateau").at("num_bad_epochs"), 0);
  EXPECT_EQ(s.at("plateau").at("cooldown_counter"), 3);
  EXPECT_DOUBLE_EQ(s.at("plateau").at("lrs").at(0).get<double>(), 1e-4);
  EXPECT_DOUBLE_EQ(schedule.factor(), 0.1);
}

TEST(ScheduleState, MismatchedStateIsRefused) {
  auto opt = make_sgd({1e-5, 1e-3});
  ScheduleOptions step;
  step.name = "step";
  LrSchedule schedule(step, *opt, 2, 4);
  auto state = schedule.state();

  ScheduleOptions cosine;
  cosine.name = "cosine";
  LrSchedule other(cosine, *opt, 2, 4);
  EXPECT_THROW(other.load_state(state), Error);

  auto one_group = make_sgd({1e-3});
  LrSchedule fewer(step, *one_group, 2, 4);
  EXPECT_THROW(fewer.load_state(state), Error);

  state.erase("epochs_done");
  try {
    schedule.load_state(state);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("schedule state"), std::string::npos) << e.what();
  }
}

TEST(ScheduleFactor, IsTheLastGroupsRatio) {
  auto opt = make_sgd({1e-5, 1e-3});
  ScheduleOptions o;
  o.name = "cosine";
  o.warmup_epochs = 1;
  o.warmup_start_factor = 0.5;
  LrSchedule schedule(o, *opt, 4, 3);
  EXPECT_DOUBLE_EQ(schedule.factor(), 1.0);
  schedule.before_step(0);
  EXPECT_DOUBLE_EQ(schedule.factor(), 0.5);
  schedule.before_step(2);
  EXPECT_DOUBLE_EQ(schedule.factor(), 0.75);
  schedule.before_step(8);  // t = 4 of T = 8: half way down the cosine
  EXPECT_NEAR(schedule.factor(), 0.5, 1e-15);
  EXPECT_NEAR(schedule.lrs()[0], 0.5e-5, 1e-20);
  schedule.before_step(100);  // past the planned steps: stays at min_lr
  EXPECT_EQ(schedule.factor(), 0.0);
}

TEST(ScheduleOptionsCheck, UnknownNameListsTheNames) {
  auto opt = make_sgd({1e-3});
  ScheduleOptions o;
  o.name = "cosin";
  try {
    LrSchedule(o, *opt, 1, 1);
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("train.schedule.name 'cosin'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("none, step, cosine, plateau"), std::string::npos) << msg;
  }
  EXPECT_EQ(schedule_names(), (std::vector<std::string>{"none", "step", "cosine", "plateau"}));
}

TEST(ScheduleOptionsCheck, OutOfRangeValuesNameTheirKey) {
  auto opt = make_sgd({1e-3});
  const std::vector<std::pair<std::string, std::function<void(ScheduleOptions&)>>> bad = {
      {"warmup_epochs", [](ScheduleOptions& o) { o.warmup_epochs = -1; }},
      {"warmup_start_factor", [](ScheduleOptions& o) { o.warmup_start_factor = -0.1; }},
      {"warmup_start_factor", [](ScheduleOptions& o) { o.warmup_start_factor = 1.5; }},
      {"step_size", [](ScheduleOptions& o) { o.step_size = 0; }},
      {"gamma", [](ScheduleOptions& o) { o.gamma = -0.1; }},
      {"min_lr", [](ScheduleOptions& o) { o.min_lr = -1e-6; }},
      {"factor", [](ScheduleOptions& o) { o.factor = 1.0; }},
      {"factor", [](ScheduleOptions& o) { o.factor = -0.5; }},
      {"patience", [](ScheduleOptions& o) { o.patience = -1; }},
      {"threshold", [](ScheduleOptions& o) { o.threshold = -1e-4; }},
      {"cooldown", [](ScheduleOptions& o) { o.cooldown = -2; }},
      {"mode", [](ScheduleOptions& o) { o.mode = "minimum"; }},
      {"monitor", [](ScheduleOptions& o) { o.monitor = ""; }},
  };
  for (const auto& [key, mutate] : bad) {
    ScheduleOptions o;
    o.name = "plateau";
    mutate(o);
    try {
      LrSchedule(o, *opt, 1, 1);
      ADD_FAILURE() << key << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("train.schedule." + key), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(LrSchedule(ScheduleOptions{}, *opt, 0, 1), Error);  // no steps per epoch
}

TEST(ScheduleOptionsCheck, AutoModeFollowsTheMonitorName) {
  auto opt = make_sgd({1.0});
  ScheduleOptions o;
  o.name = "plateau";
  o.patience = 0;
  o.monitor = "val/accuracy";  // auto = max: a falling accuracy cuts
  LrSchedule up(o, *opt, 1, 3);
  up.end_epoch(0, 50.0);
  up.end_epoch(1, 40.0);
  EXPECT_DOUBLE_EQ(up.factor(), 0.1);
  o.mode = "min";  // explicit mode wins: a falling accuracy is now an improvement
  LrSchedule down(o, *opt, 1, 3);
  down.end_epoch(0, 50.0);
  down.end_epoch(1, 40.0);
  EXPECT_DOUBLE_EQ(down.factor(), 1.0);
}

}  // namespace
}  // namespace normlab::train
