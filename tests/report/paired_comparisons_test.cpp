#include "report/paired_comparisons.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace normlab::report {
namespace {

PairInput group(const std::string& label, std::map<int64_t, double> by_seed) {
  return {label, std::move(by_seed)};
}

TEST(PairedComparisons, PairsConfigurationsThatDifferInOneSetting) {
  const std::map<int64_t, double> seeds = {{0, 0.5}, {1, 0.5}};
  auto pairs = paired_comparisons(
      {group("norm=bn clip_norm=0.0", seeds), group("norm=bn clip_norm=0.1", seeds),
       group("norm=ln clip_norm=0.0", seeds), group("norm=ln clip_norm=0.1", seeds)});
  // norm (first in the labels) before clip_norm; within one, the configurations' order.
  ASSERT_EQ(pairs.size(), 4u);
  EXPECT_EQ(pairs[0].setting, "norm");
  EXPECT_EQ(pairs[0].a_value, "ln");
  EXPECT_EQ(pairs[0].b_value, "bn");
  EXPECT_EQ(pairs[0].shared, "clip_norm=0.0");
  EXPECT_EQ(pairs[0].a_label, "norm=ln clip_norm=0.0");
  EXPECT_EQ(pairs[0].b_label, "norm=bn clip_norm=0.0");
  EXPECT_EQ(pairs[1].setting, "norm");
  EXPECT_EQ(pairs[1].shared, "clip_norm=0.1");
  EXPECT_EQ(pairs[2].setting, "clip_norm");
  EXPECT_EQ(pairs[2].a_value, "0.1");
  EXPECT_EQ(pairs[2].b_value, "0.0");
  EXPECT_EQ(pairs[2].shared, "norm=bn");
  EXPECT_EQ(pairs[3].shared, "norm=ln");
}

TEST(PairedComparisons, NoPairAcrossTwoSettingsOtherKeysOrSubGrids) {
  const std::map<int64_t, double> seeds = {{0, 0.5}, {1, 0.5}};
  EXPECT_TRUE(
      paired_comparisons({group("norm=bn lr=0.1", seeds), group("norm=ln lr=0.2", seeds)}).empty());
  EXPECT_TRUE(
      paired_comparisons({group("norm=bn lr=0.1", seeds), group("norm=bn wd=0.1", seeds)}).empty());
  EXPECT_TRUE(
      paired_comparisons({group("norm=bn", seeds), group("norm=bn lr=0.1", seeds)}).empty());
  // A sub-grid's prefix is a token without '=': it must match, it never varies.
  EXPECT_TRUE(
      paired_comparisons({group("sweep: lr=0.1", seeds), group("other: lr=0.1", seeds)}).empty());
  EXPECT_EQ(
      paired_comparisons({group("sweep: lr=0.1", seeds), group("sweep: lr=0.2", seeds)}).size(),
      1u);
  // The same label twice is not a comparison.
  EXPECT_TRUE(paired_comparisons({group("norm=bn", seeds), group("norm=bn", seeds)}).empty());
}

// A consistent per-seed gain smaller than the seed-to-seed spread: the unpaired intervals
// overlap, pairing by seed shows it.
TEST(PairedComparisons, PairingBySeedRemovesTheSharedSpread) {
  auto a = group("norm=ln", {{0, 0.82}, {1, 0.84}, {2, 0.83}});
  auto b = group("norm=bn", {{0, 0.80}, {1, 0.82}, {2, 0.81}});
  std::vector<double> av, bv;
  for (const auto& [s, v] : a.by_seed) av.push_back(v);
  for (const auto& [s, v] : b.by_seed) bv.push_back(v);
  ASSERT_TRUE(intervals_overlap(seed_stats(av), seed_stats(bv)));

  auto pairs = paired_comparisons({b, a});
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].a_value, "ln");  // listed second: a - b is ln - bn
  EXPECT_EQ(pairs[0].difference.n, 3u);
  EXPECT_NEAR(pairs[0].difference.mean, 0.02, 1e-12);
  EXPECT_LT(pairs[0].difference.ci95, 1e-9);
  EXPECT_EQ(pairs[0].verdict, PairVerdict::kHigher);
  EXPECT_EQ(paired_comparisons({a, b})[0].verdict, PairVerdict::kLower);
}

TEST(PairedComparisons, IntervalContainingZeroIsNotDistinguishable) {
  // Differences +0.02, -0.01, 0.00: mean 0.0033, sd 0.0153, 95% half-width 0.038.
  auto pairs = paired_comparisons({group("clip=0", {{0, 0.80}, {1, 0.81}, {2, 0.79}}),
                                   group("clip=1", {{0, 0.82}, {1, 0.80}, {2, 0.79}})});
  ASSERT_EQ(pairs.size(), 1u);
  const auto& d = pairs[0].difference;
  EXPECT_NEAR(d.mean, 0.01 / 3, 1e-12);
  EXPECT_NEAR(d.std,
              std::sqrt((std::pow(0.02 - 0.01 / 3, 2) + std::pow(-0.01 - 0.01 / 3, 2) +
                         std::pow(0.01 / 3, 2)) /
                        2),
              1e-12);
  EXPECT_NEAR(d.ci95, 4.303 * d.std / std::sqrt(3.0), 1e-12);
  EXPECT_EQ(pairs[0].verdict, PairVerdict::kNotDistinguishable);
  EXPECT_STREQ(to_string(pairs[0].verdict), "not distinguishable");
}

TEST(PairedComparisons, OnlySeedsBothHaveArePaired) {
  auto pairs = paired_comparisons(
      {group("norm=bn", {{0, 0.8}, {1, 0.9}}), group("norm=ln", {{1, 0.7}, {2, 0.6}})});
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].difference.n, 1u);
  EXPECT_NEAR(pairs[0].difference.mean, 0.7 - 0.9, 1e-12);
  EXPECT_EQ(pairs[0].verdict, PairVerdict::kNoInterval);
  // No seed in common (e.g. a configuration whose runs all failed): no row.
  EXPECT_TRUE(
      paired_comparisons({group("norm=bn", {{0, 0.8}}), group("norm=ln", {{1, 0.7}})}).empty());
}

TEST(PairedComparisons, SectionEscapesAndShowsTheInterval) {
  // Binary fractions, so that the difference is exactly -0.25 in every seed.
  auto pairs = paired_comparisons({group("norm=<b>", {{0, 0.75}, {1, 0.875}, {2, 0.5}}),
                                   group("norm=ln", {{0, 0.5}, {1, 0.625}, {2, 0.25}})});
  std::string html = paired_comparisons_section(pairs, "val/acc");
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  EXPECT_NE(html.find("ln &minus; &lt;b&gt;"), std::string::npos);
  EXPECT_NE(html.find("-0.25 &plusmn; 0 <span class=\"ci\">(95% CI -0.25 to -0.25)</span>"),
            std::string::npos);
  EXPECT_NE(html.find("<strong>lower</strong>"), std::string::npos);
  auto rows = paired_comparisons_json(pairs);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["verdict"], "lower");
  EXPECT_EQ(rows[0]["a"], "norm=ln");
  EXPECT_EQ(rows[0]["n"], 3);
}

}  // namespace
}  // namespace normlab::report
