#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/error.h"
#include "core/progress.h"
#include "core/runtime.h"

namespace normlab {
namespace {

TEST(Error, MessageNamesSubjectProblemAndHint) {
  Error e("data/x.idx", "truncated", "download it again");
  EXPECT_STREQ(e.what(), "data/x.idx: truncated\n  hint: download it again");
  EXPECT_EQ(e.subject(), "data/x.idx");
  EXPECT_THROW(require(false, "k", "bad"), Error);
  EXPECT_NO_THROW(require(true, "k", "bad"));
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(Progress::format_duration(12.4), "12s");
  EXPECT_EQ(Progress::format_duration(185), "3m05s");
  EXPECT_EQ(Progress::format_duration(3720), "1h02m");
  EXPECT_EQ(Progress::format_duration(-1), "?");
}

TEST(Progress, PlainModePrintsEpochLines) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* mem = open_memstream(&buf, &len);
  ProgressOptions o;
  o.label = "bn seed=0";
  o.epochs = 2;
  o.steps_per_epoch = 3;
  o.stream = mem;
  Progress p(o);
  for (int s = 1; s <= 3; ++s) p.step(0, s, 64);
  p.epoch_done(0, "val_acc 50.00");
  std::fclose(mem);
  std::string out(buf, len);
  free(buf);
  EXPECT_NE(out.find("bn seed=0 epoch 1/2 step 3/3"), std::string::npos) << out;
  EXPECT_NE(out.find("img/s"), std::string::npos) << out;
  EXPECT_NE(out.find("val_acc 50.00"), std::string::npos) << out;
}

// Captures what a Progress prints in plain mode (a memory stream is not a terminal).
template <typename F>
std::string plain_progress(ProgressOptions o, F&& drive) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* mem = open_memstream(&buf, &len);
  o.stream = mem;
  {
    Progress p(o);
    drive(p);
  }
  std::fclose(mem);
  std::string out(buf, len);
  free(buf);
  return out;
}

TEST(Progress, PhaseWithoutEpochsPrintsBatchesRateAndDuration) {
  ProgressOptions o;
  o.label = "feature cache (train, 40000 images x 2 views)";
  o.epochs = 0;
  o.steps_per_epoch = 4;
  o.plain_interval_s = 0;  // every step prints
  o.quiet_below_s = 0;
  const std::string out = plain_progress(o, [](Progress& p) {
    for (int s = 1; s <= 4; ++s) p.step(0, s, 100);
    p.finish("written");
  });
  EXPECT_NE(out.find("feature cache (train, 40000 images x 2 views): batch 2/4"), std::string::npos)
      << out;
  EXPECT_NE(out.find("ETA"), std::string::npos) << out;
  EXPECT_NE(out.find("batch 4/4"), std::string::npos) << out;
  EXPECT_NE(out.find("took "), std::string::npos) << out;
  EXPECT_NE(out.find("written"), std::string::npos) << out;
  EXPECT_EQ(out.find("epoch"), std::string::npos) << out;
}

// The lockstep engine makes one Progress per epoch: at epoch 3/3, step 574/625 of S0's
// faithful run the ETA said 11 minutes (the whole run's steps minus this epoch's) instead of
// the 51 steps left.
TEST(Progress, EtaCountsTheStepsLeftFromTheCurrentEpoch) {
  ProgressOptions o;
  o.epochs = 3;
  o.steps_per_epoch = 625;
  Progress p(o);
  EXPECT_EQ(p.remaining_steps(0, 1), 3 * 625 - 1);
  EXPECT_EQ(p.remaining_steps(2, 574), 51);
  EXPECT_EQ(p.remaining_steps(2, 625), 0);
  o.epochs = 0;  // a phase: its batches
  o.steps_per_epoch = 40;
  Progress phase(o);
  EXPECT_EQ(phase.remaining_steps(0, 7), 33);
}

// The printed line uses it: a Progress made for the last of 3 epochs of 1000 steps, one step
// taken (~20 ms), 2 steps left: "ETA 0s", not the minute that 2999 steps would take.
TEST(Progress, PrintedEtaOfAPerEpochProgressIsTheRestOfTheRun) {
  ProgressOptions o;
  o.label = "run";
  o.epochs = 3;
  o.steps_per_epoch = 1000;
  o.plain_interval_s = 0;
  const std::string out = plain_progress(o, [](Progress& p) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    p.step(2, 998, 64);
  });
  EXPECT_NE(out.find("epoch 3/3 step 998/1000"), std::string::npos) << out;
  EXPECT_NE(out.find("ETA 0s"), std::string::npos) << out;
}

TEST(Progress, ShortSilentPhaseStaysSilent) {
  ProgressOptions o;
  o.label = "evaluating";
  o.epochs = 0;
  o.steps_per_epoch = 2;
  o.quiet_below_s = 60;  // throttled by the default 10 s interval: nothing printed before
  const std::string out = plain_progress(o, [](Progress& p) {
    p.step(0, 1, 10);
    p.step(0, 2, 10);
    p.finish("done");
  });
  EXPECT_EQ(out, "");
}

TEST(Runtime, ThreadsAndDevices) {
  EXPECT_EQ(apply_threads(1), 1);
  EXPECT_GE(apply_threads(0), 1);
  apply_threads(2);
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  EXPECT_THROW(parse_device("tpu:7"), Error);
  if (!torch::cuda::is_available()) {
    EXPECT_THROW(parse_device("cuda"), Error);
  }
  EXPECT_NO_THROW(parse_device("auto"));
}

TEST(Runtime, GeneratorIsDeterministicAndIndependentOfGlobalRng) {
  auto g1 = make_generator(42);
  auto a = torch::randperm(100, g1, torch::kLong);
  torch::manual_seed(7);
  (void)torch::rand({10});
  auto g2 = make_generator(42);
  auto b = torch::randperm(100, g2, torch::kLong);
  EXPECT_TRUE(torch::equal(a, b));
  auto g3 = make_generator(43);
  EXPECT_FALSE(torch::equal(a, torch::randperm(100, g3, torch::kLong)));
}

}  // namespace
}  // namespace normlab
