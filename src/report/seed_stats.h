// Statistics over seeds for the report: mean, sample standard deviation and the half-width
// of a 95% confidence interval for the mean (Student t), so that a table can say whether two
// configurations differ by more than the seed-to-seed spread.
#pragma once

#include <cstddef>
#include <vector>

namespace normlab::report {

struct SeedStats {
  size_t n = 0;
  double mean = 0;  // NaN when n == 0
  double std = 0;   // sample std (n-1 denominator); NaN when n < 2
  double ci95 = 0;  // half-width t_{0.975, n-1} * std / sqrt(n); NaN when n < 2
};

// Two-sided 95% Student t quantile t_{0.975, df}; 1.96 (normal) for df > 30.
double t_quantile_975(int df);

SeedStats seed_stats(const std::vector<double>& values);

// True when the two 95% intervals overlap (|mean difference| <= sum of half-widths); false
// when either has no interval. Overlap is the conservative reading: a difference whose
// intervals overlap is not shown to be real.
bool intervals_overlap(const SeedStats& a, const SeedStats& b);

}  // namespace normlab::report
