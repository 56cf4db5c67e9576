#include "report/seed_stats.h"

#include <array>
#include <cmath>
#include <limits>

namespace normlab::report {
namespace {

// t_{0.975, df} for df = 1..30, from the standard table (e.g. NIST/SEMATECH e-Handbook of
// Statistical Methods, section 1.3.6.7.2, "Critical values of the Student's t distribution").
constexpr std::array<double, 30> kT975 = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                                          2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
                                          2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
                                          2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
// Normal quantile z_{0.975}, used beyond the table.
constexpr double kZ975 = 1.96;

}  // namespace

double t_quantile_975(int df) {
  if (df < 1) return std::numeric_limits<double>::quiet_NaN();
  if (df <= static_cast<int>(kT975.size())) return kT975[static_cast<size_t>(df - 1)];
  return kZ975;
}

SeedStats seed_stats(const std::vector<double>& values) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  SeedStats s;
  s.n = values.size();
  if (s.n == 0) {
    s.mean = s.std = s.ci95 = kNaN;
    return s;
  }
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / static_cast<double>(s.n);
  if (s.n < 2) {
    s.std = s.ci95 = kNaN;
    return s;
  }
  double ss = 0;
  for (double v : values) ss += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(ss / static_cast<double>(s.n - 1));
  s.ci95 = t_quantile_975(static_cast<int>(s.n) - 1) * s.std / std::sqrt(static_cast<double>(s.n));
  return s;
}

bool intervals_overlap(const SeedStats& a, const SeedStats& b) {
  if (a.n < 2 || b.n < 2) return false;
  return std::fabs(a.mean - b.mean) <= a.ci95 + b.ci95;
}

}  // namespace normlab::report
