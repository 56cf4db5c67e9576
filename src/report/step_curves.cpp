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

namespace {

json by_layer_json(const std::map<std::string, std::map<int64_t, std::pair<double, size_t>>>& acc,
                   size_t max_points) {
  json out = json::object();
  for (const auto& [layer, by_step] : acc) {
    std::vector<std::pair<double, double>> points;
    for (const auto& [step, a] : by_step) {
      points.emplace_back(static_cast<double>(step), a.first / static_cast<double>(a.second));
    }
    auto [x, y] = downsample(points, max_points);
    out[layer] = {{"x", x}, {"y", y}};
  }
  return out;
}

}  // namespace

json step_curves(const store::Store& db, const std::vector<GroupRuns>& groups, size_t max_points) {
  namespace metric = store::metric;
  json out = json::array();
  // Santurkar et al.'s measurements (probe smoothness) are per-step series too.
  for (const auto& name : {metric::kTrainLoss, metric::kStepValLoss, metric::kStepValAcc,
                           std::string("smoothness/loss_range"),
                           std::string("smoothness/grad_change"), std::string("smoothness/beta")}) {
    json traces = step_series(db, groups, name, max_points);
    if (!traces.empty()) out.push_back({{"metric", name}, {"groups", traces}});
  }
  return out;
}

json step_layer_curves(const store::Store& db, const std::vector<GroupRuns>& groups,
                       size_t max_points) {
  json out = json::array();
  for (const std::string family : {"weight_var_delta", "weight_var"}) {
    const std::string prefix = family + "/";
    std::vector<std::string> layers;  // in the order the first run recorded them
    json traces = json::array();
    for (const auto& g : groups) {
      // layer -> step -> (sum, count) over the configuration's runs
      std::map<std::string, std::map<int64_t, std::pair<double, size_t>>> by_layer;
      for (int64_t id : g.run_ids) {
        for (const auto& p : db.scalars(id, store::Axis::kStep, prefix)) {
          const std::string layer = p.name.substr(prefix.size());
          if (layer.find('/') != std::string::npos) continue;
          if (std::find(layers.begin(), layers.end(), layer) == layers.end()) {
            layers.push_back(layer);
          }
          auto& acc = by_layer[layer][p.step];
          acc.first += p.value;
          acc.second++;
        }
      }
      if (by_layer.empty()) continue;
      traces.push_back({{"name", g.name},
                        {"index", g.index},
                        {"by_layer", by_layer_json(by_layer, max_points)}});
    }
    if (layers.empty()) continue;
    // Each group's series in the family's layer order (missing layers: empty).
    for (auto& t : traces) {
      json xs = json::array(), ys = json::array();
      for (const auto& l : layers) {
        const json& s = t["by_layer"].contains(l)
                            ? t["by_layer"][l]
                            : json{{"x", json::array()}, {"y", json::array()}};
        xs.push_back(s["x"]);
        ys.push_back(s["y"]);
      }
      t.erase("by_layer");
      t["x"] = xs;
      t["y"] = ys;
    }
    out.push_back({{"family", family}, {"layers", layers}, {"groups", traces}});
  }
  return out;
}

std::string step_curve_sections(const json& curves, const json& layers) {
  if (curves.empty() && layers.empty()) return "";
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
  for (size_t k = 0; k < layers.size(); ++k) {
    const json& f = layers[k];
    html << "<h3>" << html_escape(f["family"].get<std::string>())
         << " per step, by layer</h3>\n<label>layer <select id=\"step-layer-" << k << "-select\">";
    for (size_t l = 0; l < f["layers"].size(); ++l) {
      html << "<option value=\"" << l << "\">" << l + 1 << ": "
           << html_escape(f["layers"][l].get<std::string>()) << "</option>";
    }
    html << "</select></label>\n<div class=\"plot\" id=\"step-layer-" << k << "\"></div>\n";
  }
  return html.str();
}

const char* step_curve_script() {
  return R"js(
(function () {
  'use strict';
  if (typeof Plotly === 'undefined') return;
  var data = JSON.parse(document.getElementById('normlab-data').textContent);
  var families = data.step_layer_curves || [];
  if ((!data.step_curves || data.step_curves.length === 0) && families.length === 0) return;
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
    families.forEach(function (f, k) {
      var l = Number(document.getElementById('step-layer-' + k + '-select').value) || 0;
      Plotly.react('step-layer-' + k, f.groups.map(function (g) {
        return {x: g.x[l], y: smooth(g.y[l], w), mode: 'lines', name: g.name,
                line: {color: palette[g.index % palette.length]}};
      }), {title: f.family + ', layer ' + (l + 1) + ' (' + f.layers[l] + '), mean over seeds',
           xaxis: {title: 'step'}, yaxis: {title: f.family}}, config);
    });
    (data.step_curves || []).forEach(function (c, k) {
      Plotly.react('step-curve-' + k, c.groups.map(function (g) {
        return {x: g.x, y: smooth(g.y, w), mode: 'lines', name: g.name,
                line: {color: palette[g.index % palette.length]}};
      }), {title: c.metric + ' per step (mean over seeds' + (w > 0 ? ', smoothed ' + w : '') + ')',
           xaxis: {title: 'step'}, yaxis: {title: c.metric}}, config);
    });
  }
  select.addEventListener('change', draw);
  families.forEach(function (f, k) {
    document.getElementById('step-layer-' + k + '-select').addEventListener('change', draw);
  });
  draw();
})();
)js";
}

}  // namespace normlab::report
