// A recorded histogram over time as a heatmap for the report (x = step or epoch, y = bin
// centre, colour = the fraction of the values in each bin), and how histogram names split
// into the family, stage and item the report's panels are organised by.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/records.h"

namespace normlab::report {

// A heatmap column per step of a 50-epoch study would be 25k columns per layer; columns
// are averaged over buckets down to this many.
constexpr size_t kMaxHistogramColumns = 200;

// "<family>/<stage>/<item>" when the name has 3+ components and the second is "pre" or
// "post" (e.g. grad_hist/pre/features.3.0.weight: before and after clipping), else
// "<family>/<item>" (e.g. weight_hist/head.0); a name without '/' is a family of one.
struct HistogramName {
  std::string family, stage, item;
};
HistogramName split_histogram_name(const std::string& name);

// Stages in drawing order: pre left of post, unstaged names last.
int stage_rank(const std::string& stage);

// One histogram name of one run over time: {name, axis, scale, y_label, x, y, z}, z (bins,
// columns) = the fraction of the column's finite values in each bin (null: no values);
// columns are averaged over buckets past 200. `points` are that name's, ordered by axis then
// step (Store::histograms' order). A name drawn on one axis with points on the other, or
// re-binned because its edges change, adds a note; one whose points fail validation or
// change scale is skipped with a note (null is returned).
nlohmann::json histogram_heatmap(const std::string& run_name, const std::string& name,
                                 const std::vector<const store::HistogramPoint*>& points,
                                 std::vector<std::string>* notes);

// Largest finite value of a heatmap's z (0 when it has none).
double heatmap_z_max(const nlohmann::json& plot);

}  // namespace normlab::report
