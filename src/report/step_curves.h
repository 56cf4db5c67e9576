// Per-step curves in the report: the training loss per step and the per-minibatch validation
// loss and accuracy (train.val_every), mean over the seeds of each configuration, with a
// smoothing control (an exponential moving average, debiased as TensorBoard's, applied in the
// page) for S1's "running-average-smoothed" curves and S2's per-minibatch losses.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/store.h"

namespace normlab::report {

struct GroupRuns {
  std::string name;
  size_t index = 0;  // the configuration's colour
  std::vector<int64_t> run_ids;
};

// Averages consecutive buckets so that at most max_points remain (x = mean step of bucket).
std::pair<nlohmann::json, nlohmann::json> downsample(
    const std::vector<std::pair<double, double>>& points, size_t max_points);

// [{name, index, x, y}] of one per-step series: per configuration the mean over its runs at
// each step, downsampled to max_points.
nlohmann::json step_series(const store::Store& db, const std::vector<GroupRuns>& groups,
                           const std::string& name, size_t max_points);

// [{metric, groups: step_series(...)}] for train/loss, step_val/loss and step_val/acc, those
// that any run recorded.
nlohmann::json step_curves(const store::Store& db, const std::vector<GroupRuns>& groups,
                           size_t max_points);

// Per-layer step series (S2's weight-variance change per layer, probe weight_hist):
// [{family, layers: [name], groups: [{name, index, x: [[..] per layer], y: [[..] per layer]}]}]
// for the families "weight_var_delta" and "weight_var" ("<family>/<layer>" step series),
// mean over a configuration's runs per step, downsampled to max_points per layer.
nlohmann::json step_layer_curves(const store::Store& db, const std::vector<GroupRuns>& groups,
                                 size_t max_points);

// The page's HTML for step_curves() and step_layer_curves(): the smoothing <select>, one plot
// per metric, and per layer family a layer <select> and its plot.
std::string step_curve_sections(const nlohmann::json& curves, const nlohmann::json& layers);

// The script drawing them (an IIFE reading the page's normlab-data element).
const char* step_curve_script();

}  // namespace normlab::report
