#include "report/seed_stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace normlab::report {
namespace {

TEST(SeedStats, TQuantilesFollowTheTableThenTheNormal) {
  EXPECT_DOUBLE_EQ(t_quantile_975(1), 12.706);
  EXPECT_DOUBLE_EQ(t_quantile_975(2), 4.303);
  EXPECT_DOUBLE_EQ(t_quantile_975(10), 2.228);
  EXPECT_DOUBLE_EQ(t_quantile_975(30), 2.042);
  EXPECT_DOUBLE_EQ(t_quantile_975(31), 1.96);
  EXPECT_TRUE(std::isnan(t_quantile_975(0)));
}

TEST(SeedStats, MeanSampleStdAndInterval) {
  auto s = seed_stats({1.0, 2.0, 3.0});
  EXPECT_EQ(s.n, 3u);
  EXPECT_DOUBLE_EQ(s.mean, 2.0);
  EXPECT_DOUBLE_EQ(s.std, 1.0);  // n-1 denominator (population std would be 0.816)
  EXPECT_NEAR(s.ci95, 4.303 / std::sqrt(3.0), 1e-12);

  auto one = seed_stats({0.5});
  EXPECT_EQ(one.n, 1u);
  EXPECT_DOUBLE_EQ(one.mean, 0.5);
  EXPECT_TRUE(std::isnan(one.std));
  EXPECT_TRUE(std::isnan(one.ci95));
  EXPECT_TRUE(std::isnan(seed_stats({}).mean));
}

TEST(SeedStats, OverlapNeedsTwoIntervals) {
  auto a = seed_stats({0.80, 0.81, 0.82});  // 0.81 ± 0.0248
  auto b = seed_stats({0.77, 0.78, 0.79});  // 0.78 ± 0.0248: gap 0.03 < 0.0497
  auto c = seed_stats({0.70, 0.71, 0.72});  // gap 0.11
  EXPECT_TRUE(intervals_overlap(a, b));
  EXPECT_TRUE(intervals_overlap(b, a));
  EXPECT_FALSE(intervals_overlap(a, c));
  EXPECT_FALSE(intervals_overlap(a, seed_stats({0.81})));
}

}  // namespace
}  // namespace normlab::report
