// Paired comparisons for the report: every two configurations that differ in exactly one grid
// setting ("norm=ln clip_norm=0.1" vs "norm=bn clip_norm=0.1"), compared seed by seed. Runs
// of one seed number share the initial weights of what they have in common and, in lockstep,
// the batches, so the per-seed difference removes most of the seed-to-seed spread that the
// unpaired intervals of the final table carry.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "report/seed_stats.h"

namespace normlab::report {

// One configuration: its group label ("key=value" tokens separated by spaces, as the grid
// writes them) and the compared metric's final value per seed.
struct PairInput {
  std::string label;
  std::map<int64_t, double> by_seed;
};

enum class PairVerdict {
  kHigher,              // the 95% interval of the mean difference lies above 0
  kLower,               // ... below 0
  kNotDistinguishable,  // it contains 0: the difference is within seed-to-seed spread
  kNoInterval,          // fewer than 2 seeds in common
};

// a - b over the seeds both have, where a and b differ only in `setting`.
struct PairedComparison {
  std::string setting;  // the key that differs ("norm")
  std::string a_value;  // its value in a ("ln")
  std::string b_value;  // its value in b ("bn"), the configuration listed first
  std::string shared;   // the tokens both labels share ("clip_norm=0.1"), may be empty
  std::string a_label;
  std::string b_label;
  SeedStats difference;  // of a - b per seed: mean, sd and the 95% half-width (Student t)
  PairVerdict verdict = PairVerdict::kNoInterval;
};

// Every pair of configurations whose labels have the same keys and differ in the value of
// exactly one, in the order of `groups` (b before a), by the setting's position in the labels.
// Labels that do not split into "key=value" tokens (a value with a space) pair with nothing; two
// configurations with an identical label, or without a seed in common, are not compared.
std::vector<PairedComparison> paired_comparisons(const std::vector<PairInput>& groups);

const char* to_string(PairVerdict verdict);

// The comparisons as JSON rows (setting, a, b, a_value, b_value, shared, n, mean, sd, ci95,
// verdict), for report_data().
nlohmann::json paired_comparisons_json(const std::vector<PairedComparison>& pairs);

// The report's section body: what the table means, then one row per comparison of `metric`.
std::string paired_comparisons_section(const std::vector<PairedComparison>& pairs,
                                       const std::string& metric);

}  // namespace normlab::report
