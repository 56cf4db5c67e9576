// Self-contained HTML report of a study store: Plotly is inlined so the file opens offline.
// Records are drawn by kind, not by the probe that wrote them: scalar series as curves,
// histograms as heatmaps over time, surfaces as contours, matrices as heatmaps.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/store.h"

namespace normlab::report {

struct ReportOptions {
  std::string store_path;   // study.db
  std::string output_path;  // report.html
  std::string title;        // default: the study name from the store
};

// The data the page's plots are drawn from (embedded in the HTML as JSON):
//   curves      per epoch metric: mean and mean +- std over seeds, per configuration
//   grad_total  per-step "grad_norm/total", mean over seeds, per configuration
//   grad_layers per-step "grad_norm/<param>" of the first seed of each configuration
//   histograms  per histogram family ("grad_hist", "weight_hist", ...) and configuration
//               (first seed): items (layers), each with one heatmap per stage (pre/post
//               side by side); z (bins, columns) = counts normalised per column
//   surfaces    last epoch of each surface of the first seed of each configuration
//   confusion   matrix "confusion/val" (else any "confusion/*") of the best configuration
//   layer_series per-layer epoch families ("esm/mu/<layer>", "dmbn/beta/<layer>"): seed
//               mean and std per configuration, layer x epoch (report/layer_series.h)
// Records that cannot be drawn are skipped with a line in `notes`.
nlohmann::json report_data(const store::Store& db, std::vector<std::string>* notes = nullptr);

// Writes the report atomically. Throws Error naming the store or the missing asset.
void write_html_report(const ReportOptions& options);

}  // namespace normlab::report
