#include "report/step_curves.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "report/html.h"
#include "store/metric_names.h"

namespace normlab::report {

using json = nlohmann::json;

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

json step_series(const store::Store& db, const std::vector<GroupRuns>& groups,
                 const std::string& name, size_t max_points) {
  json traces = json::array();
  for (const auto& g : groups) {
    std::map<int64_t, std::pair<double, size_t>> by_step;
    for (int64_t id : g.run_ids) {
      for (const auto& p : db.scalars(id, store::Axis::kStep, name)) {
        if (p.name != name) continue;
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
    auto [x, y] = downsample(points, max_points);
    traces.push_back({{"name", g.name}, {"index", g.index}, {"x", x}, {"y", y}});
  }
  return traces;
}

json step_curves(const store::Store& db, const std::vector<GroupRuns>& groups, size_t max_points) {
  namespace metric = store::metric;
  json out = json::array();
  for (const auto& name : {metric::kTrainLoss, metric::kStepValLoss, metric::kStepValAcc}) {
    json traces = step_series(db, groups, name, max_points);
    if (!traces.empty()) out.push_back({{"metric", name}, {"groups", traces}});
  }
  return out;
}

std::string step_curve_sections(const json& curves) {
  if (curves.empty()) return "";
  std::ostringstream html;
  html << "<h2>Per-step curves</h2>\n<p class=\"note\">Mean over the seeds of each "
       << "configuration, per training step (buckets of consecutive steps averaged for long "
       << "runs); <code>step_val/*</code> is the fixed validation sample every "
       << "<code>train.val_every</code> steps. Smoothing is an exponential moving average, "
       << "debiased at the start.</p>\n<label>smoothing <select id=\"step-smoothing\">";
  for (const char* w : {"0", "0.6", "0.8", "0.9", "0.95", "0.99"}) {
    html << "<option value=\"" << w << "\">" << w << "</option>";
  }
  html << "</select></label>\n";
  for (size_t k = 0; k < curves.size(); ++k) {
    html << "<div class=\"plot\" id=\"step-curve-" << k << "\"></div>\n";
  }
  return html.str();
}

const char* step_curve_script() {
  return R"js(
(function () {
  'use strict';
  if (typeof Plotly === 'undefined') return;
  var data = JSON.parse(document.getElementById('normlab-data').textContent);
  if (!data.step_curves || data.step_curves.length === 0) return;
  var palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
                 '#7f7f7f', '#bcbd22', '#17becf'];
  var config = {responsive: true, displaylogo: false};
  var select = document.getElementById('step-smoothing');
  function smooth(ys, w) {
    if (!(w > 0)) return ys;
    var out = [], last = 0, n = 0;
    ys.forEach(function (v) {
      if (v === null) { out.push(null); return; }
      last = last * w + (1 - w) * v;
      n += 1;
      out.push(last / (1 - Math.pow(w, n)));
    });
    return out;
  }
  function draw() {
    var w = Number(select.value) || 0;
    data.step_curves.forEach(function (c, k) {
      Plotly.react('step-curve-' + k, c.groups.map(function (g) {
        return {x: g.x, y: smooth(g.y, w), mode: 'lines', name: g.name,
                line: {color: palette[g.index % palette.length]}};
      }), {title: c.metric + ' per step (mean over seeds' + (w > 0 ? ', smoothed ' + w : '') + ')',
           xaxis: {title: 'step'}, yaxis: {title: c.metric}}, config);
    });
  }
  select.addEventListener('change', draw);
  draw();
})();
)js";
}

}  // namespace normlab::report
