#include "report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "report/assets.h"
#include "report/histogram_diff.h"
#include "report/histogram_heatmap.h"
#include "report/html.h"
#include "report/layer_series.h"
#include "report/paired_comparisons.h"
#include "report/seed_stats.h"
#include "report/step_curves.h"
#include "report/surfaces.h"
#include "store/metric_names.h"
#include "store/store.h"

namespace normlab::report {
namespace {

using nlohmann::json;
using store::Axis;
using store::HistogramPoint;
using store::RunRecord;
using store::RunStatus;

// Per-step traces are averaged over buckets down to this many points: a 50-epoch study with
// 500 steps per epoch would otherwise put 25k points per trace into the page.
constexpr size_t kMaxPointsPerTrace = 500;
// Per-layer traces are many (one per layer per configuration); fewer points keep the file at
// a few MB for a ResNet-sized grid.
constexpr size_t kMaxPointsPerLayerTrace = 150;

// The curves drawn over epochs; the final table's order is metric::kReportOrder.
const std::vector<std::string> kCurveMetrics = {"val/acc", "val/loss", "train/loss", "train/acc"};
const std::string& kRankMetric = store::metric::kRank;
const std::string& kGradTotal = store::metric::kGradNormTotal;
const std::string kGradPrefix = "grad_norm/";
// The matrix drawn for the best configuration, and the family it falls back to.
const std::string kConfusion = "confusion/val";
const std::string kConfusionPrefix = "confusion/";

using Series = std::vector<std::pair<int64_t, double>>;  // (step or epoch, value), by step

struct RunData {
  RunRecord record;
  std::map<std::string, Series> epoch;  // epoch scalars by name
};

struct Group {
  std::string name;
  std::vector<RunData> runs;  // runs that did not fail, by seed
  std::map<RunStatus, size_t> status_counts;
  std::map<std::string, SeedStats> final_stats;  // over complete runs' last-epoch values
  double mean_wall_seconds = 0;
  size_t complete = 0;
};

// JSON for a <script type="application/json"> element. '<' only occurs inside JSON strings,
// where \u003c means the same character, so no "</script>" or "<!--" can reach the HTML.
std::string json_for_script(const json& value) {
  std::string text = value.dump();
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '<') {
      out += "\\u003c";
    } else {
      out += c;
    }
  }
  return out;
}

std::string study_title(const ReportOptions& options, const store::Store& db) {
  if (!options.title.empty()) return options.title;
  for (const char* key : {"study_name", "name", "study"}) {
    if (auto value = db.meta(key); value && !value->empty()) return *value;
  }
  auto dir = std::filesystem::absolute(options.store_path).parent_path().filename().string();
  return dir.empty() ? "normlab study" : dir;
}

std::vector<Group> load_groups(const store::Store& db, const std::vector<RunRecord>& runs) {
  std::vector<Group> groups;
  std::map<std::string, size_t> index;
  for (const auto& run : runs) {
    auto [it, inserted] = index.emplace(run.group, groups.size());
    if (inserted) groups.push_back(Group{run.group, {}, {}, {}, 0, 0});
    Group& g = groups[it->second];
    g.status_counts[run.status]++;
    if (run.status == RunStatus::kFailed) continue;
    RunData data{run, {}};
    for (auto& p : db.scalars(run.id, Axis::kEpoch)) {
      data.epoch[p.name].emplace_back(p.step, p.value);
    }
    g.runs.push_back(std::move(data));
  }
  for (auto& g : groups) {
    std::stable_sort(g.runs.begin(), g.runs.end(), [](const RunData& a, const RunData& b) {
      return a.record.seed < b.record.seed;
    });
    std::map<std::string, std::vector<double>> finals;
    double wall = 0;
    for (const auto& run : g.runs) {
      if (run.record.status != RunStatus::kComplete) continue;
      ++g.complete;
      wall += run.record.wall_seconds;
      for (const auto& [name, series] : run.epoch) {
        if (!series.empty()) finals[name].push_back(series.back().second);
      }
    }
    for (const auto& [name, values] : finals) g.final_stats[name] = seed_stats(values);
    g.mean_wall_seconds = g.complete > 0 ? wall / static_cast<double>(g.complete) : 0;
  }
  return groups;
}

std::vector<std::string> table_metrics(const std::vector<Group>& groups) {
  std::set<std::string> names;
  for (const auto& g : groups) {
    for (const auto& [name, stats] : g.final_stats) {
      if (!per_layer_name(name)) names.insert(name);  // per-layer series have their plots
    }
  }
  std::vector<std::string> out;
  for (const auto& name : store::metric::kReportOrder) {
    if (names.erase(name) > 0) out.push_back(name);
  }
  out.insert(out.end(), names.begin(), names.end());
  return out;
}

// Index of the group with the highest mean final val/acc, or -1 when none has it.
int best_group(const std::vector<Group>& groups) {
  int best = -1;
  for (size_t i = 0; i < groups.size(); ++i) {
    auto it = groups[i].final_stats.find(kRankMetric);
    if (it == groups[i].final_stats.end() || !std::isfinite(it->second.mean)) continue;
    if (best < 0 ||
        it->second.mean > groups[static_cast<size_t>(best)].final_stats.at(kRankMetric).mean) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

std::string stats_cell(const SeedStats& s) {
  if (s.n == 0) return "&mdash;";
  if (s.n == 1) return table_number(s.mean) + " <span class=\"ci\">(n=1)</span>";
  return table_number(s.mean) + " &plusmn; " + table_number(s.std) +
         " <span class=\"ci\">(95% CI &plusmn; " + table_number(s.ci95) + ")</span>";
}

std::string status_summary(const Group& g) {
  std::string out;
  for (auto status :
       {RunStatus::kComplete, RunStatus::kRunning, RunStatus::kPending, RunStatus::kFailed}) {
    auto it = g.status_counts.find(status);
    if (it == g.status_counts.end() || it->second == 0) continue;
    if (!out.empty()) out += ", ";
    out += std::to_string(it->second) + " " + store::to_string(status);
  }
  return out;
}

std::string final_table(const std::vector<Group>& groups, int best) {
  auto metrics = table_metrics(groups);
  std::ostringstream html;
  html << "<table class=\"final\">\n<thead><tr><th>configuration</th><th>n seeds</th>"
       << "<th>runs</th>";
  for (const auto& m : metrics) html << "<th>" << html_escape(m) << "</th>";
  html << "<th>wall s (mean)</th><th>vs best " << html_escape(kRankMetric)
       << "</th></tr></thead>\n<tbody>\n";
  const SeedStats* best_stats =
      best >= 0 ? &groups[static_cast<size_t>(best)].final_stats.at(kRankMetric) : nullptr;
  for (size_t i = 0; i < groups.size(); ++i) {
    const Group& g = groups[i];
    std::string verdict = "&mdash;";
    auto rank = g.final_stats.find(kRankMetric);
    if (static_cast<int>(i) == best) {
      verdict = "<strong>best</strong>";
    } else if (best_stats != nullptr && rank != g.final_stats.end()) {
      if (rank->second.n < 2 || best_stats->n < 2) {
        verdict = "no interval (n&lt;2)";
      } else if (intervals_overlap(rank->second, *best_stats)) {
        verdict = "not distinguishable from best";
      } else {
        verdict = "worse than best";
      }
    }
    html << "<tr" << (static_cast<int>(i) == best ? " class=\"best\"" : "") << "><td>"
         << html_escape(g.name) << "</td><td>" << g.complete << "</td><td>"
         << html_escape(status_summary(g)) << "</td>";
    for (const auto& m : metrics) {
      auto it = g.final_stats.find(m);
      html << "<td>" << (it == g.final_stats.end() ? "&mdash;" : stats_cell(it->second)) << "</td>";
    }
    html << "<td>" << (g.complete > 0 ? table_number(g.mean_wall_seconds) : "&mdash;")
         << "</td><td>" << verdict << "</td></tr>\n";
  }
  html << "</tbody>\n</table>\n";
  return html.str();
}

// The rank metric's last-epoch value of each complete run, per configuration and seed.
std::vector<PairedComparison> group_pairs(const std::vector<Group>& groups) {
  std::vector<PairInput> inputs;
  for (const auto& g : groups) {
    PairInput in{g.name, {}};
    for (const auto& run : g.runs) {
      if (run.record.status != RunStatus::kComplete) continue;
      auto it = run.epoch.find(kRankMetric);
      if (it != run.epoch.end() && !it->second.empty()) {
        in.by_seed[run.record.seed] = it->second.back().second;
      }
    }
    inputs.push_back(std::move(in));
  }
  return paired_comparisons(inputs);
}

// Mean over seeds (and mean ± std band) of one epoch metric, per configuration.
json epoch_curves(const std::vector<Group>& groups) {
  json curves = json::array();
  for (const auto& metric : kCurveMetrics) {
    json traces = json::array();
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      std::map<int64_t, std::vector<double>> by_epoch;
      for (const auto& run : groups[gi].runs) {
        auto it = run.epoch.find(metric);
        if (it == run.epoch.end()) continue;
        for (const auto& [epoch, value] : it->second) by_epoch[epoch].push_back(value);
      }
      if (by_epoch.empty()) continue;
      json x = json::array(), mean = json::array(), lo = json::array(), hi = json::array(),
           n = json::array();
      for (const auto& [epoch, values] : by_epoch) {
        SeedStats s = seed_stats(values);
        double spread = s.n >= 2 ? s.std : 0.0;
        x.push_back(epoch);
        mean.push_back(plot_value(s.mean));
        lo.push_back(plot_value(s.mean - spread));
        hi.push_back(plot_value(s.mean + spread));
        n.push_back(s.n);
      }
      traces.push_back({{"name", groups[gi].name},
                        {"index", gi},
                        {"x", x},
                        {"mean", mean},
                        {"lo", lo},
                        {"hi", hi},
                        {"n", n}});
    }
    if (!traces.empty()) curves.push_back({{"metric", metric}, {"groups", traces}});
  }
  return curves;
}

// Per-configuration run ids and colours, for the per-step series (report/step_curves.h).
std::vector<GroupRuns> group_runs(const std::vector<Group>& groups) {
  std::vector<GroupRuns> out;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    GroupRuns g{groups[gi].name, gi, {}};
    for (const auto& run : groups[gi].runs) g.run_ids.push_back(run.record.id);
    out.push_back(std::move(g));
  }
  return out;
}

// Total gradient norm per step, mean over the seeds of each configuration.
json grad_total(const store::Store& db, const std::vector<Group>& groups) {
  return step_series(db, group_runs(groups), kGradTotal, kMaxPointsPerTrace);
}

// Per-layer gradient norms of the first seed of each configuration that recorded them.
json grad_layers(const store::Store& db, const std::vector<Group>& groups) {
  json out = json::array();
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    for (const auto& run : groups[gi].runs) {
      std::map<std::string, std::vector<std::pair<double, double>>> layers;
      for (const auto& p : db.scalars(run.record.id, Axis::kStep, kGradPrefix)) {
        if (p.name == kGradTotal) continue;
        layers[p.name.substr(kGradPrefix.size())].emplace_back(static_cast<double>(p.step),
                                                               p.value);
      }
      if (layers.empty()) continue;
      json traces = json::array();
      for (const auto& [layer, points] : layers) {
        auto [x, y] = downsample(points, kMaxPointsPerLayerTrace);
        traces.push_back({{"name", layer}, {"x", x}, {"y", y}});
      }
      out.push_back({{"group", groups[gi].name}, {"run", run.record.name}, {"layers", traces}});
      break;
    }
  }
  return out;
}

// The first run of a configuration (by seed) for which `has` is true, or nullptr.
template <typename Has>
const RunData* first_run_with(const Group& g, Has has) {
  for (const auto& run : g.runs) {
    if (has(run)) return &run;
  }
  return nullptr;
}

// ---- histograms ----

// Histogram panels: one per family and configuration (its first seed that recorded
// histograms), each listing the family's items with one heatmap per stage.
json histograms(const store::Store& db, const std::vector<Group>& groups,
                std::vector<std::string>* notes) {
  // family -> panels in configuration order
  std::map<std::string, json> by_family;
  for (const auto& g : groups) {
    const RunData* run = first_run_with(
        g, [&](const RunData& r) { return !db.histogram_names(r.record.id).empty(); });
    if (run == nullptr) continue;
    // family -> item -> stage rank -> histogram name
    std::map<std::string, std::map<std::string, std::map<int, std::string>>> layout;
    std::map<std::string, std::vector<const HistogramPoint*>> by_name;
    auto points = db.histograms(run->record.id);
    for (const auto& p : points) by_name[p.name].push_back(&p);
    for (const auto& [name, list] : by_name) {
      HistogramName n = split_histogram_name(name);
      layout[n.family][n.item][stage_rank(n.stage)] = name;
    }
    for (const auto& [family, items] : layout) {
      std::set<int> ranks;
      for (const auto& [item, stages] : items) {
        for (const auto& [rank, name] : stages) ranks.insert(rank);
      }
      json stage_names = json::array();
      for (int rank : ranks) stage_names.push_back(rank == 0 ? "pre" : rank == 1 ? "post" : "");
      json item_list = json::array();
      for (const auto& [item, stages] : items) {
        json plots = json::array();
        double zmax = 0;
        for (const auto& [rank, name] : stages) {
          json plot = histogram_heatmap(run->record.name, name, by_name[name], notes);
          if (plot.is_null()) continue;
          plot["stage"] = rank == 0 ? "pre" : rank == 1 ? "post" : "";
          zmax = std::max(zmax, heatmap_z_max(plot));
          plots.push_back(std::move(plot));
        }
        if (plots.empty()) continue;
        // One colour scale per item, shared by its pre and post plots.
        item_list.push_back(
            {{"name", item.empty() ? family : item}, {"zmax", plot_value(zmax)}, {"plots", plots}});
      }
      if (item_list.empty()) continue;
      by_family[family].push_back({{"family", family},
                                   {"group", g.name},
                                   {"run", run->record.name},
                                   {"stages", stage_names},
                                   {"items", item_list}});
    }
  }
  json out = json::array();
  for (auto& [family, panels] : by_family) {
    for (auto& panel : panels) out.push_back(std::move(panel));
  }
  return out;
}

// ---- surfaces and matrices ----

// Surfaces of the first seed of each configuration that recorded any: every epoch of each
// name (report/surfaces.h). z is (Y, X) with z[i][j] = f(x[j], y[i]): Plotly's layout.
json surfaces(const store::Store& db, const std::vector<Group>& groups,
              std::vector<std::string>* notes) {
  std::vector<RunSurfaces> runs;
  for (const auto& g : groups) {
    for (const auto& run : g.runs) {
      std::vector<store::SurfaceRecord> records;
      try {
        records = db.surfaces(run.record.id);
      } catch (const Error& e) {
        notes->push_back("surfaces of run " + run.record.name + " skipped: " + e.what());
        break;
      }
      if (records.empty()) continue;
      runs.push_back({g.name, run.record.name, std::move(records)});
      break;
    }
  }
  return surface_data(runs);
}

json confusion(const store::Store& db, const std::vector<Group>& groups, int best,
               std::vector<std::string>* notes) {
  if (best < 0) return nullptr;
  const Group& g = groups[static_cast<size_t>(best)];
  for (const auto& run : g.runs) {
    std::vector<store::MatrixRecord> records;
    try {
      records = db.matrices(run.record.id, kConfusion);
      if (records.empty()) {
        for (auto& m : db.matrices(run.record.id)) {
          if (m.name.rfind(kConfusionPrefix, 0) != 0) continue;
          if (!records.empty() && m.name != records.front().name) break;
          records.push_back(std::move(m));
        }
      }
    } catch (const Error& e) {
      notes->push_back("confusion matrix of run " + run.record.name + " skipped: " + e.what());
      return nullptr;
    }
    if (records.empty()) continue;
    const store::MatrixRecord& m = records.back();
    return {{"group", g.name},
            {"run", run.record.name},
            {"name", m.name},
            {"epoch", m.epoch},
            {"labels", m.matrix.column_labels},
            {"row_labels", m.matrix.row_labels},
            {"matrix", plot_rows(m.matrix.values)}};
  }
  return nullptr;
}

std::string meta_table(const std::vector<std::pair<std::string, std::string>>& meta) {
  if (meta.empty()) return "<p>No study metadata recorded.</p>\n";
  std::ostringstream html;
  html << "<table class=\"meta\">\n";
  for (const auto& [key, value] : meta) {
    html << "<tr><th>" << html_escape(key) << "</th><td>";
    if (value.size() > 120 || value.find('\n') != std::string::npos) {
      html << "<details><summary>" << value.size() << " characters</summary><pre>"
           << html_escape(value) << "</pre></details>";
    } else {
      html << html_escape(value);
    }
    html << "</td></tr>\n";
  }
  html << "</table>\n";
  return html.str();
}

std::string failed_table(const std::vector<RunRecord>& runs) {
  std::ostringstream html;
  size_t count = 0;
  for (const auto& run : runs) {
    if (run.status != RunStatus::kFailed) continue;
    if (count++ == 0) {
      html << "<table class=\"failed\">\n<thead><tr><th>run</th><th>configuration</th>"
           << "<th>seed</th><th>error</th></tr></thead>\n<tbody>\n";
    }
    html << "<tr><td>" << html_escape(run.name) << "</td><td>" << html_escape(run.group)
         << "</td><td>" << run.seed << "</td><td><pre>" << html_escape(run.error)
         << "</pre></td></tr>\n";
  }
  if (count == 0) return "<p>No failed runs.</p>\n";
  html << "</tbody>\n</table>\n";
  return html.str();
}

constexpr const char* kStyle = R"css(
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.best td { background: #eef7ee; }
.ci { color: #666; font-size: 12px; }
.plot { width: 100%; height: 420px; }
.plot-row { display: flex; gap: 8px; }
.plot-row .plot { flex: 1; min-width: 0; }
.hist-panel { margin: 1em 0 2em; }
pre { white-space: pre-wrap; margin: 0; }
.note { color: #555; }
)css";

// Builds the plots from the embedded data; the tables above do not depend on it.
constexpr const char* kRenderScript = R"js(
(function () {
  'use strict';
  if (typeof Plotly === 'undefined') return;
  var data = JSON.parse(document.getElementById('normlab-data').textContent);
  var palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
                 '#7f7f7f', '#bcbd22', '#17becf'];
  function color(i) { return palette[i % palette.length]; }
  function rgba(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + a + ')';
  }
  var config = {responsive: true, displaylogo: false};

  data.curves.forEach(function (c, k) {
    var traces = [];
    c.groups.forEach(function (g) {
      var col = color(g.index);
      traces.push({x: g.x, y: g.lo, mode: 'lines', line: {width: 0}, legendgroup: g.name,
                   showlegend: false, hoverinfo: 'skip'});
      traces.push({x: g.x, y: g.hi, mode: 'lines', line: {width: 0}, fill: 'tonexty',
                   fillcolor: rgba(col, 0.2), legendgroup: g.name, showlegend: false,
                   hoverinfo: 'skip'});
      traces.push({x: g.x, y: g.mean, mode: 'lines+markers', name: g.name, legendgroup: g.name,
                   line: {color: col}, text: g.n.map(function (n) { return 'n=' + n; })});
    });
    Plotly.newPlot('curve-' + k, traces, {
      title: c.metric + ' (mean \u00b1 std over seeds)',
      xaxis: {title: 'epoch'}, yaxis: {title: c.metric}}, config);
  });

  if (data.grad_total.length > 0) {
    Plotly.newPlot('grad-total', data.grad_total.map(function (g) {
      return {x: g.x, y: g.y, mode: 'lines', name: g.name, line: {color: color(g.index)}};
    }), {title: 'total gradient norm (mean over seeds)', xaxis: {title: 'step'},
         yaxis: {title: '||g||', type: 'log'}}, config);
  }

  if (data.grad_layers.length > 0) {
    var traces = [], owner = [];
    data.grad_layers.forEach(function (cfg, c) {
      cfg.layers.forEach(function (l) {
        traces.push({x: l.x, y: l.y, mode: 'lines', name: l.name, visible: c === 0});
        owner.push(c);
      });
    });
    var buttons = data.grad_layers.map(function (cfg, c) {
      return {label: cfg.group, method: 'update',
              args: [{visible: owner.map(function (o) { return o === c; })},
                     {title: 'per-layer gradient norm: ' + cfg.run}]};
    });
    Plotly.newPlot('grad-layers', traces, {
      title: 'per-layer gradient norm: ' + data.grad_layers[0].run,
      xaxis: {title: 'step'}, yaxis: {title: '||g||', type: 'log'},
      updatemenus: buttons.length > 1 ? [{buttons: buttons, x: 0, y: 1.15, xanchor: 'left'}] : []
    }, config);
  }

  // One panel per histogram family and configuration: the <select> picks the item (layer);
  // its stages (pre/post clipping) are drawn side by side on one colour scale.
  data.histograms.forEach(function (panel, k) {
    var select = document.getElementById('hist-' + k + '-select');
    function draw() {
      var item = panel.items[Number(select.value) || 0];
      panel.stages.forEach(function (stage, s) {
        var div = document.getElementById('hist-' + k + '-' + s);
        var plot = null;
        item.plots.forEach(function (p) { if (p.stage === stage) plot = p; });
        if (plot === null) {
          Plotly.purge(div);
          div.style.display = 'none';
          return;
        }
        div.style.display = '';
        Plotly.react(div, [{type: 'heatmap', x: plot.x, y: plot.y, z: plot.z, zmin: 0,
                            zmax: item.zmax > 0 ? item.zmax : 1, colorscale: 'Viridis',
                            colorbar: {title: 'fraction'}}],
                     {title: plot.name,
                      xaxis: {title: plot.axis}, yaxis: {title: plot.y_label}}, config);
      });
    }
    select.addEventListener('change', draw);
    draw();
  });

  if (data.confusion) {
    var m = data.confusion;
    Plotly.newPlot('confusion', [{type: 'heatmap', x: m.labels, y: m.row_labels, z: m.matrix,
                                  colorscale: 'Blues'}],
                   {title: 'confusion matrix: ' + m.run, xaxis: {title: 'predicted'},
                    yaxis: {title: 'true', autorange: 'reversed'}}, config);
  }
})();
)js";

std::string plot_divs(const std::string& prefix, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    out += "<div class=\"plot\" id=\"" + prefix + std::to_string(i) + "\"></div>\n";
  }
  return out;
}

// The histogram panels' HTML: a heading, the item <select> (options rendered here, so the
// list reads without JavaScript) and one plot per stage in a row.
std::string histogram_sections(const json& panels) {
  std::ostringstream html;
  std::string family;
  for (size_t k = 0; k < panels.size(); ++k) {
    const json& p = panels[k];
    if (p["family"] != family) {
      family = p["family"].get<std::string>();
      html << "<h3>" << html_escape(family) << "</h3>\n";
    }
    std::string id = "hist-" + std::to_string(k);
    html << "<div class=\"hist-panel\"><h4>" << html_escape(p["group"].get<std::string>())
         << " <span class=\"note\">(" << html_escape(p["run"].get<std::string>())
         << ")</span></h4>\n<label>item <select id=\"" << id << "-select\">";
    for (size_t i = 0; i < p["items"].size(); ++i) {
      html << "<option value=\"" << i << "\">"
           << html_escape(p["items"][i]["name"].get<std::string>()) << "</option>";
    }
    html << "</select></label>\n<div class=\"plot-row\">";
    for (size_t s = 0; s < p["stages"].size(); ++s) {
      html << "<div class=\"plot\" id=\"" << id << "-" << s << "\"></div>";
    }
    html << "</div></div>\n";
  }
  return html.str();
}

// Everything the page shows, read once from the store.
struct Study {
  std::vector<RunRecord> runs;
  std::vector<std::pair<std::string, std::string>> meta;
  std::vector<Group> groups;      // compared
  std::vector<Group> aux_groups;  // listed only
  int best = -1;
  std::vector<PairedComparison> pairs;
  json data;
  std::vector<std::string> notes;
};

Study load_study(const store::Store& db) {
  Study study;
  study.runs = db.runs();
  study.meta = db.all_meta();
  // Auxiliary groups (e.g. the pretraining run, trained on another task) are listed but
  // kept out of the comparison: their metrics are not comparable with the grid's.
  std::set<std::string> auxiliary;
  for (const auto& [key, value] : study.meta) {
    if (key != "auxiliary_groups") continue;
    json names = json::parse(value, nullptr, /*allow_exceptions=*/false);
    if (names.is_array()) {
      for (const auto& n : names) {
        if (n.is_string()) auxiliary.insert(n.get<std::string>());
      }
    }
  }
  for (auto& g : load_groups(db, study.runs)) {
    (auxiliary.count(g.name) > 0 ? study.aux_groups : study.groups).push_back(std::move(g));
  }
  study.best = best_group(study.groups);
  study.pairs = group_pairs(study.groups);
  study.data = {{"curves", epoch_curves(study.groups)},
                {"grad_total", grad_total(db, study.groups)},
                {"step_curves", step_curves(db, group_runs(study.groups), kMaxPointsPerTrace)},
                {"step_layer_curves",
                 step_layer_curves(db, group_runs(study.groups), kMaxPointsPerLayerTrace)},
                {"grad_layers", grad_layers(db, study.groups)},
                {"histograms", histograms(db, study.groups, &study.notes)},
                {"surfaces", surfaces(db, study.groups, &study.notes)},
                {"confusion", confusion(db, study.groups, study.best, &study.notes)},
                {"paired", paired_comparisons_json(study.pairs)}};
  std::vector<GroupSeries> series;
  for (const auto& g : study.groups) {
    GroupSeries gs{g.name, {}};
    for (const auto& run : g.runs) gs.runs.push_back(&run.epoch);
    series.push_back(std::move(gs));
  }
  study.data["layer_series"] = layer_series(series);
  return study;
}

}  // namespace

void write_html_report(const ReportOptions& options) {
  require(!options.output_path.empty(), "report", "no output path given");
  // Everything is read and rendered in memory first: a failure leaves any existing report
  // untouched, and success replaces it atomically.
  std::string plotly = load_plotly();

  store::OpenOptions read_only;
  read_only.read_only = true;
  auto db = store::Store::open(options.store_path, read_only);
  std::string title = study_title(options, *db);
  Study study = load_study(*db);
  const auto& runs = study.runs;
  const auto& groups = study.groups;
  const json& data = study.data;

  std::map<RunStatus, size_t> totals;
  for (const auto& run : runs) totals[run.status]++;

  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
       << "<title>" << html_escape(title) << "</title>\n<style>" << kStyle << "</style>\n"
       << "<script>\n"
       << plotly << "\n</script>\n</head>\n<body>\n"
       << "<h1>" << html_escape(title) << "</h1>\n"
       << "<p>Store: <code>" << html_escape(options.store_path) << "</code>. " << runs.size()
       << " runs in " << groups.size() << " configurations (" << totals[RunStatus::kComplete]
       << " complete, " << totals[RunStatus::kRunning] << " running, "
       << totals[RunStatus::kPending] << " pending, " << totals[RunStatus::kFailed]
       << " failed).</p>\n"
       << "<noscript><p class=\"note\">Plots need JavaScript; the tables below do not.</p>"
       << "</noscript>\n";

  html << "<h2>Final metrics</h2>\n<p class=\"note\">Last-epoch value of each metric over "
       << "the complete runs of a configuration (one per seed): mean &plusmn; sample standard "
       << "deviation, and the half-width of the 95% confidence interval of the mean "
       << "(Student t, n&minus;1 degrees of freedom). A configuration whose " << kRankMetric
       << " interval overlaps the best one's is <em>not distinguishable from best</em>: the "
       << "difference is within seed-to-seed spread.</p>\n"
       << final_table(groups, study.best);
  if (!study.pairs.empty()) {
    html << "<h2>Paired comparisons</h2>\n" << paired_comparisons_section(study.pairs, kRankMetric);
  }
  if (!study.aux_groups.empty()) {
    html << "<h3>Auxiliary runs</h3>\n<p class=\"note\">Not part of the comparison (e.g. "
         << "pretraining on the source task).</p>\n"
         << final_table(study.aux_groups, -1);
  }

  const auto& curves = data["curves"];
  html << "<h2>Training curves</h2>\n";
  if (curves.empty()) html << "<p>No epoch metrics recorded.</p>\n";
  html << plot_divs("curve-", curves.size());
  html << step_curve_sections(data["step_curves"], data["step_layer_curves"]);

  html << "<h2>Gradient norms</h2>\n";
  if (data["grad_total"].empty() && data["grad_layers"].empty()) {
    html << "<p>No gradient norms recorded.</p>\n";
  } else {
    html << "<p class=\"note\">Per-step series are averaged over buckets to at most "
         << kMaxPointsPerTrace << " points (" << kMaxPointsPerLayerTrace
         << " per layer). Per-layer norms are from the first seed of each configuration.</p>\n";
    if (!data["grad_total"].empty()) html << "<div class=\"plot\" id=\"grad-total\"></div>\n";
    if (!data["grad_layers"].empty()) html << "<div class=\"plot\" id=\"grad-layers\"></div>\n";
  }

  if (!data["histograms"].empty()) {
    html << "<h2>Histograms</h2>\n<p class=\"note\">First seed of each configuration. Each "
         << "column is one histogram (per step or per epoch), normalised to the fraction of its "
         << "finite values per bin; at most " << kMaxHistogramColumns << " columns (consecutive "
         << "ones averaged). <em>pre</em> and <em>post</em> (e.g. before and after gradient "
         << "clipping) share a colour scale.</p>\n"
         << histogram_sections(data["histograms"]) << histogram_diff_sections(data["histograms"]);
  }
  if (!data["layer_series"].empty()) {
    html << "<h2>Per-layer series</h2>\n<p class=\"note\">Epoch series recorded per layer, "
         << "such as BatchNorm estimation shift (<code>esm/mu</code>, <code>esm/sigma</code>: "
         << "||running &minus; population||<sub>2</sub> of the mean and of the standard "
         << "deviation) and DMBN's adopted momentum (<code>dmbn/beta</code>). Left and right: "
         << "two layers (2 and 19 by default, as in seed 004's figures), mean &plusmn; std over "
         << "seeds per configuration; below, every layer by epoch for one configuration.</p>\n"
         << layer_series_sections(data["layer_series"]);
  }
  if (!data["surfaces"].empty()) {
    html << "<h2>Surfaces</h2>\n<p class=\"note\">Loss landscapes (a contour and a 3-D "
         << "surface) and 1-D curves (interpolation between the initial and final weights), "
         << "first seed of each configuration; the epoch selector shows each epoch that "
         << "recorded one.</p>\n"
         << surface_sections(data["surfaces"]);
  }
  if (!data["confusion"].is_null()) {
    html << "<h2>Confusion matrix of the best configuration ("
         << html_escape(data["confusion"]["group"].get<std::string>()) << ")</h2>\n"
         << "<p class=\"note\">" << html_escape(data["confusion"]["name"].get<std::string>())
         << " of " << html_escape(data["confusion"]["run"].get<std::string>())
         << ": rows are the true class, columns the predicted one.</p>\n"
         << "<div class=\"plot\" id=\"confusion\"></div>\n";
  }

  html << "<h2>Failed runs</h2>\n" << failed_table(runs);
  if (!study.notes.empty()) {
    html << "<h2>Notes</h2>\n<ul>\n";
    for (const auto& n : study.notes) html << "<li>" << html_escape(n) << "</li>\n";
    html << "</ul>\n";
  }
  html << "<h2>Study metadata</h2>\n" << meta_table(study.meta);

  html << "<script type=\"application/json\" id=\"normlab-data\">" << json_for_script(data)
       << "</script>\n<script>"
       << escape_script_text(std::string(kRenderScript) + layer_series_script() + surface_script() +
                             step_curve_script() + histogram_diff_script())
       << "</script>\n"
       << "</body>\n</html>\n";
  write_file_atomic(options.output_path, html.str());
}

json report_data(const store::Store& db, std::vector<std::string>* notes) {
  Study study = load_study(db);
  if (notes != nullptr) notes->insert(notes->end(), study.notes.begin(), study.notes.end());
  return std::move(study.data);
}

}  // namespace normlab::report
