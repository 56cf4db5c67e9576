#include "report/histogram_heatmap.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "core/error.h"
#include "report/html.h"

namespace normlab::report {

using nlohmann::json;
using store::Axis;
using store::HistogramPoint;

namespace {

std::string y_label(const std::string& scale) {
  return scale == "log10" ? "log10 |value|" : "value";
}

// Bin counts mapped onto `edges` (bins + 1): a point whose edges differ has each bin's
// count moved to the target bin holding that bin's centre (first/last bins stay open-ended).
std::vector<double> rebin(const store::Histogram& h, const std::vector<double>& edges) {
  std::vector<double> out(edges.size() - 1, 0.0);
  for (size_t b = 0; b < h.counts.size(); ++b) {
    double centre = 0.5 * (h.edges[b] + h.edges[b + 1]);
    auto it = std::upper_bound(edges.begin(), edges.end(), centre);
    size_t target = it == edges.begin() ? 0 : static_cast<size_t>(it - edges.begin()) - 1;
    out[std::min(target, out.size() - 1)] += static_cast<double>(h.counts[b]);
  }
  return out;
}

}  // namespace

HistogramName split_histogram_name(const std::string& name) {
  auto first = name.find('/');
  if (first == std::string::npos) return {name, "", ""};
  auto second = name.find('/', first + 1);
  if (second != std::string::npos) {
    std::string stage = name.substr(first + 1, second - first - 1);
    if (stage == "pre" || stage == "post") {
      return {name.substr(0, first), stage, name.substr(second + 1)};
    }
  }
  return {name.substr(0, first), "", name.substr(first + 1)};
}

int stage_rank(const std::string& stage) { return stage == "pre" ? 0 : stage == "post" ? 1 : 2; }

json histogram_heatmap(const std::string& run_name, const std::string& name,
                       const std::vector<const HistogramPoint*>& all,
                       std::vector<std::string>* notes) {
  // A name recorded on both axes is drawn on the one with more points.
  size_t per_step = 0;
  for (const auto* p : all) per_step += p->axis == Axis::kStep ? 1 : 0;
  Axis axis = per_step > all.size() - per_step ? Axis::kStep : Axis::kEpoch;
  std::vector<const HistogramPoint*> points;
  for (const auto* p : all) {
    if (p->axis == axis) points.push_back(p);
  }
  if (points.size() < all.size()) {
    notes->push_back("histogram " + name + " of run " + run_name + ": drawn per " +
                     store::to_string(axis) + "; its per-" +
                     store::to_string(axis == Axis::kStep ? Axis::kEpoch : Axis::kStep) +
                     " points are not shown");
  }

  for (const auto* p : points) {
    try {
      store::validate(p->hist, name);
    } catch (const Error& e) {
      notes->push_back("histogram " + name + " of run " + run_name + " skipped: " + e.what());
      return nullptr;
    }
  }
  const std::string& scale = points.front()->hist.scale;
  std::vector<double> edges = points.front()->hist.edges;
  bool same_edges = true;
  for (const auto* p : points) {
    if (p->hist.scale != scale) {
      notes->push_back("histogram " + name + " of run " + run_name +
                       " skipped: its scale changes over time (" + scale + ", " + p->hist.scale +
                       ")");
      return nullptr;
    }
    same_edges = same_edges && p->hist.edges == edges;
  }
  if (!same_edges) {
    // A common grid over the union of the ranges, as fine as the finest point's bins.
    double lo = std::numeric_limits<double>::infinity();
    double hi = -lo;
    size_t bins = 0;
    for (const auto* p : points) {
      lo = std::min(lo, p->hist.edges.front());
      hi = std::max(hi, p->hist.edges.back());
      bins = std::max(bins, p->hist.counts.size());
    }
    edges.resize(bins + 1);
    for (size_t b = 0; b <= bins; ++b) {
      edges[b] = lo + (hi - lo) * static_cast<double>(b) / static_cast<double>(bins);
    }
    notes->push_back("histogram " + name + " of run " + run_name +
                     ": bin edges change over time; re-binned onto " + std::to_string(bins) +
                     " equal bins");
  }
  const size_t bins = edges.size() - 1;

  // Columns (fractions per bin), averaged over buckets of consecutive points.
  std::vector<std::pair<double, std::vector<double>>> columns;
  for (const auto* p : points) {
    std::vector<double> counts = rebin(p->hist, edges);
    double total = 0;
    for (double c : counts) total += c;
    std::vector<double> fractions(bins, std::numeric_limits<double>::quiet_NaN());
    if (total > 0) {
      for (size_t b = 0; b < bins; ++b) fractions[b] = counts[b] / total;
    }
    columns.emplace_back(static_cast<double>(p->step), std::move(fractions));
  }
  size_t bucket =
      std::max<size_t>(1, (columns.size() + kMaxHistogramColumns - 1) / kMaxHistogramColumns);
  json x = json::array();
  std::vector<json> rows(bins, json::array());
  for (size_t i = 0; i < columns.size(); i += bucket) {
    size_t end = std::min(columns.size(), i + bucket);
    double sx = 0;
    std::vector<double> sum(bins, 0.0);
    size_t filled = 0;
    for (size_t j = i; j < end; ++j) {
      sx += columns[j].first;
      if (std::isnan(columns[j].second[0])) continue;
      ++filled;
      for (size_t b = 0; b < bins; ++b) sum[b] += columns[j].second[b];
    }
    x.push_back(plot_value(sx / static_cast<double>(end - i)));
    for (size_t b = 0; b < bins; ++b) {
      rows[b].push_back(filled > 0 ? plot_value(sum[b] / static_cast<double>(filled))
                                   : json(nullptr));
    }
  }
  json y = json::array();
  for (size_t b = 0; b < bins; ++b) y.push_back(plot_value(0.5 * (edges[b] + edges[b + 1])));
  return {{"name", name},
          {"axis", store::to_string(axis)},
          {"scale", scale},
          {"y_label", y_label(scale)},
          {"x", std::move(x)},
          {"y", std::move(y)},
          {"z", json(std::move(rows))}};
}

double heatmap_z_max(const json& plot) {
  double out = 0;
  for (const auto& row : plot["z"]) {
    for (const auto& v : row) {
      if (v.is_number()) out = std::max(out, v.get<double>());
    }
  }
  return out;
}

}  // namespace normlab::report
