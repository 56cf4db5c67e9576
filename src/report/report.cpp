#include "report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "report/assets.h"
#include "report/seed_stats.h"
#include "store/store.h"

namespace normlab::report {
namespace {

using nlohmann::json;
using store::RunRecord;
using store::RunStatus;

// Per-step traces are averaged over buckets down to this many points: a 50-epoch study with
// 500 steps per epoch would otherwise put 25k points per trace into the page.
constexpr size_t kMaxPointsPerTrace = 500;
// Per-layer traces are many (one per layer per configuration); fewer points keep the file at
// a few MB for a ResNet-sized grid.
constexpr size_t kMaxPointsPerLayerTrace = 150;
// Significant digits kept for plotted values (the table prints from full precision).
constexpr int kPlotDigits = 5;

// The curves drawn over epochs, and the order metrics appear in the final table.
const std::vector<std::string> kCurveMetrics = {"val/acc", "val/loss", "train/loss", "train/acc"};
const std::vector<std::string> kMetricOrder = {"val/acc",   "val/loss",     "test/acc",
                                               "test/loss", "val/macro_f1", "test/macro_f1",
                                               "train/acc", "train/loss"};
const std::string kRankMetric = "val/acc";
const std::string kGradTotal = "grad_norm/total";
const std::string kGradPrefix = "grad_norm/";

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

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

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

std::string fmt(double value) {
  if (std::isnan(value)) return "NaN";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", value);
  return buf;
}

// Rounds for plotting; NaN and infinities become null in JSON (Plotly draws a gap).
json plot_value(double value) {
  if (!std::isfinite(value)) return nullptr;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", kPlotDigits, value);
  return std::strtod(buf, nullptr);
}

// Averages consecutive buckets so that at most max_points remain (x = mean step of bucket).
std::pair<json, json> downsample(const std::vector<std::pair<double, double>>& points,
                                 size_t max_points) {
  json xs = json::array();
  json ys = json::array();
  size_t bucket = std::max<size_t>(1, (points.size() + max_points - 1) / max_points);
  for (size_t i = 0; i < points.size(); i += bucket) {
    size_t end = std::min(points.size(), i + bucket);
    double sx = 0;
    double sy = 0;
    for (size_t j = i; j < end; ++j) {
      sx += points[j].first;
      sy += points[j].second;
    }
    double n = static_cast<double>(end - i);
    xs.push_back(plot_value(sx / n));
    ys.push_back(plot_value(sy / n));
  }
  return {xs, ys};
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
    for (auto& p : db.scalars(run.id, "epoch")) data.epoch[p.name].emplace_back(p.step, p.value);
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
    for (const auto& [name, stats] : g.final_stats) names.insert(name);
  }
  std::vector<std::string> out;
  for (const auto& name : kMetricOrder) {
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
  if (s.n == 1) return fmt(s.mean) + " <span class=\"ci\">(n=1)</span>";
  return fmt(s.mean) + " &plusmn; " + fmt(s.std) + " <span class=\"ci\">(95% CI &plusmn; " +
         fmt(s.ci95) + ")</span>";
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
    html << "<td>" << (g.complete > 0 ? fmt(g.mean_wall_seconds) : "&mdash;") << "</td><td>"
         << verdict << "</td></tr>\n";
  }
  html << "</tbody>\n</table>\n";
  return html.str();
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

// Total gradient norm per step, mean over the seeds of each configuration.
json grad_total(const store::Store& db, const std::vector<Group>& groups) {
  json traces = json::array();
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    std::map<int64_t, std::pair<double, size_t>> by_step;
    for (const auto& run : groups[gi].runs) {
      for (const auto& p : db.scalars(run.record.id, "step", kGradTotal)) {
        if (p.name != kGradTotal) continue;
        auto& acc = by_step[p.step];
        acc.first += p.value;
        acc.second++;
      }
    }
    if (by_step.empty()) continue;
    std::vector<std::pair<double, double>> points;
    points.reserve(by_step.size());
    for (const auto& [step, acc] : by_step) {
      points.emplace_back(static_cast<double>(step), acc.first / static_cast<double>(acc.second));
    }
    auto [x, y] = downsample(points, kMaxPointsPerTrace);
    traces.push_back({{"name", groups[gi].name}, {"index", gi}, {"x", x}, {"y", y}});
  }
  return traces;
}

// Per-layer gradient norms of the first seed of each configuration that recorded them.
json grad_layers(const store::Store& db, const std::vector<Group>& groups) {
  json out = json::array();
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    for (const auto& run : groups[gi].runs) {
      std::map<std::string, std::vector<std::pair<double, double>>> layers;
      for (const auto& p : db.scalars(run.record.id, "step", kGradPrefix)) {
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

// Loss landscapes: artifact {"alphas": [A], "betas": [B], "loss": [A][B]} with
// loss[i][j] = L(theta + alphas[i] d1 + betas[j] d2). Plotly's contour wants z[y][x], so z is
// the transpose with x = alphas, y = betas.
json landscapes(const store::Store& db, const std::vector<Group>& groups,
                std::vector<std::string>* notes) {
  json out = json::array();
  for (const auto& g : groups) {
    for (const auto& run : g.runs) {
      auto artifact = db.artifact(run.record.id, "landscape");
      if (!artifact) continue;
      try {
        auto alphas = artifact->at("alphas").get<std::vector<double>>();
        auto betas = artifact->at("betas").get<std::vector<double>>();
        auto loss = artifact->at("loss").get<std::vector<std::vector<double>>>();
        bool ok = loss.size() == alphas.size();
        for (const auto& row : loss) ok = ok && row.size() == betas.size();
        if (!ok) {
          notes->push_back("landscape of run " + run.record.name +
                           " skipped: loss is not alphas x betas");
          break;
        }
        json z = json::array();
        for (size_t j = 0; j < betas.size(); ++j) {
          json row = json::array();
          for (size_t i = 0; i < alphas.size(); ++i) row.push_back(plot_value(loss[i][j]));
          z.push_back(row);
        }
        out.push_back({{"group", g.name},
                       {"run", run.record.name},
                       {"alphas", alphas},
                       {"betas", betas},
                       {"z", z}});
      } catch (const json::exception& e) {
        notes->push_back("landscape of run " + run.record.name + " skipped: " + e.what());
      }
      break;
    }
  }
  return out;
}

// Confusion matrix {"labels": [K], "matrix": [K][K]} (rows = true class, columns =
// predicted) of the first seed of the best configuration.
json confusion(const store::Store& db, const std::vector<Group>& groups, int best,
               std::vector<std::string>* notes) {
  if (best < 0) return nullptr;
  const Group& g = groups[static_cast<size_t>(best)];
  for (const auto& run : g.runs) {
    auto artifact = db.artifact(run.record.id, "confusion");
    if (!artifact) continue;
    try {
      auto labels = artifact->at("labels");
      auto matrix = artifact->at("matrix").get<std::vector<std::vector<double>>>();
      json labels_text = json::array();
      for (const auto& l : labels)
        labels_text.push_back(l.is_string() ? l.get<std::string>() : l.dump());
      return {
          {"group", g.name}, {"run", run.record.name}, {"labels", labels_text}, {"matrix", matrix}};
    } catch (const json::exception& e) {
      notes->push_back("confusion matrix of run " + run.record.name + " skipped: " + e.what());
      return nullptr;
    }
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

  data.landscapes.forEach(function (l, k) {
    Plotly.newPlot('landscape-' + k, [{type: 'contour', x: l.alphas, y: l.betas, z: l.z,
                                       colorscale: 'Viridis', contours: {coloring: 'heatmap'}}],
                   {title: 'loss landscape: ' + l.run, xaxis: {title: 'alpha'},
                    yaxis: {title: 'beta'}}, config);
  });

  if (data.confusion) {
    var m = data.confusion;
    Plotly.newPlot('confusion', [{type: 'heatmap', x: m.labels, y: m.labels, z: m.matrix,
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
  auto runs = db->runs();
  auto meta = db->all_meta();
  // Auxiliary groups (e.g. the pretraining run, trained on another task) are listed but
  // kept out of the comparison: their metrics are not comparable with the grid's.
  std::set<std::string> auxiliary;
  for (const auto& [key, value] : meta) {
    if (key != "auxiliary_groups") continue;
    json names = json::parse(value, nullptr, /*allow_exceptions=*/false);
    if (names.is_array()) {
      for (const auto& n : names) {
        if (n.is_string()) auxiliary.insert(n.get<std::string>());
      }
    }
  }
  std::vector<Group> groups, aux_groups;
  for (auto& g : load_groups(*db, runs)) {
    (auxiliary.count(g.name) > 0 ? aux_groups : groups).push_back(std::move(g));
  }
  int best = best_group(groups);

  std::vector<std::string> notes;
  json data = {{"curves", epoch_curves(groups)},
               {"grad_total", grad_total(*db, groups)},
               {"grad_layers", grad_layers(*db, groups)},
               {"landscapes", landscapes(*db, groups, &notes)},
               {"confusion", confusion(*db, groups, best, &notes)}};

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
       << final_table(groups, best);
  if (!aux_groups.empty()) {
    html << "<h3>Auxiliary runs</h3>\n<p class=\"note\">Not part of the comparison (e.g. "
         << "pretraining on the source task).</p>\n"
         << final_table(aux_groups, -1);
  }

  const auto& curves = data["curves"];
  html << "<h2>Training curves</h2>\n";
  if (curves.empty()) html << "<p>No epoch metrics recorded.</p>\n";
  html << plot_divs("curve-", curves.size());

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

  if (!data["landscapes"].empty()) {
    html << "<h2>Loss landscapes</h2>\n<p class=\"note\">First seed of each configuration.</p>\n"
         << plot_divs("landscape-", data["landscapes"].size());
  }
  if (!data["confusion"].is_null()) {
    html << "<h2>Confusion matrix of the best configuration ("
         << html_escape(data["confusion"]["group"].get<std::string>()) << ")</h2>\n"
         << "<div class=\"plot\" id=\"confusion\"></div>\n";
  }

  html << "<h2>Failed runs</h2>\n" << failed_table(runs);
  if (!notes.empty()) {
    html << "<h2>Notes</h2>\n<ul>\n";
    for (const auto& n : notes) html << "<li>" << html_escape(n) << "</li>\n";
    html << "</ul>\n";
  }
  html << "<h2>Study metadata</h2>\n" << meta_table(meta);

  html << "<script type=\"application/json\" id=\"normlab-data\">" << json_for_script(data)
       << "</script>\n<script>" << escape_script_text(kRenderScript) << "</script>\n"
       << "</body>\n</html>\n";
  write_file_atomic(options.output_path, html.str());
}

}  // namespace normlab::report
