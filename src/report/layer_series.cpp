#include "report/layer_series.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "report/html.h"
#include "report/seed_stats.h"

namespace normlab::report {
namespace {

using nlohmann::json;

// Natural order: digit runs compare as numbers ("features.2.1" < "features.10.1").
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      const std::string na = a.substr(i, ie - i), nb = b.substr(j, je - j);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ie, j = je;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i, ++j;
  }
  return a.size() - i < b.size() - j;
}

// (family, layer) of a per-layer name: "esm/mu/features.2.1" -> ("esm/mu", "features.2.1").
std::pair<std::string, std::string> split_name(const std::string& name) {
  const auto first = name.find('/');
  const auto second = name.find('/', first + 1);
  return {name.substr(0, second), name.substr(second + 1)};
}

}  // namespace

bool per_layer_name(const std::string& name) {
  const auto first = name.find('/');
  return first != std::string::npos && name.find('/', first + 1) != std::string::npos;
}

json layer_series(const std::vector<GroupSeries>& groups) {
  // family -> layers seen
  std::map<std::string, std::vector<std::string>> families;
  for (const auto& g : groups) {
    for (const EpochSeries* run : g.runs) {
      for (const auto& [name, series] : *run) {
        if (!per_layer_name(name) || series.empty()) continue;
        auto [family, layer] = split_name(name);
        auto& layers = families[family];
        if (std::find(layers.begin(), layers.end(), layer) == layers.end()) layers.push_back(layer);
      }
    }
  }
  json out = json::array();
  for (auto& [family, layers] : families) {
    std::sort(layers.begin(), layers.end(), natural_less);
    const auto last = static_cast<int64_t>(layers.size()) - 1;
    // Layers 2 and 19 (1-based), the seed's figures; the last layer when there are fewer.
    json defaults = {std::min<int64_t>(1, last), std::min<int64_t>(18, last)};
    json traces = json::array();
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      std::vector<int64_t> epochs;
      for (const EpochSeries* run : groups[gi].runs) {
        for (const auto& layer : layers) {
          auto it = run->find(family + "/" + layer);
          if (it == run->end()) continue;
          for (const auto& [epoch, v] : it->second) epochs.push_back(epoch);
        }
      }
      std::sort(epochs.begin(), epochs.end());
      epochs.erase(std::unique(epochs.begin(), epochs.end()), epochs.end());
      if (epochs.empty()) continue;
      json mean = json::array(), sd = json::array();
      size_t n_max = 0;
      for (const auto& layer : layers) {
        json m = json::array(), s = json::array();
        for (int64_t epoch : epochs) {
          std::vector<double> values;
          for (const EpochSeries* run : groups[gi].runs) {
            auto it = run->find(family + "/" + layer);
            if (it == run->end()) continue;
            for (const auto& [e, v] : it->second) {
              if (e == epoch) values.push_back(v);
            }
          }
          const SeedStats st = seed_stats(values);
          n_max = std::max(n_max, st.n);
          m.push_back(st.n > 0 ? plot_value(st.mean) : json(nullptr));
          s.push_back(st.n >= 2 ? plot_value(st.std) : json(0.0));
        }
        mean.push_back(m);
        sd.push_back(s);
      }
      traces.push_back({{"name", groups[gi].name},
                        {"index", gi},
                        {"epochs", epochs},
                        {"mean", mean},
                        {"sd", sd},
                        {"n", n_max}});
    }
    if (traces.empty()) continue;
    out.push_back(
        {{"family", family}, {"layers", layers}, {"defaults", defaults}, {"groups", traces}});
  }
  return out;
}

std::string layer_series_sections(const json& families) {
  std::ostringstream html;
  for (size_t k = 0; k < families.size(); ++k) {
    const json& f = families[k];
    const std::string id = "layers-" + std::to_string(k);
    html << "<h3>" << html_escape(f["family"].get<std::string>())
         << "</h3>\n<div class=\"plot-row\">";
    for (int side = 0; side < 2; ++side) {
      const int64_t chosen = f["defaults"][side].get<int64_t>();
      html << "<div style=\"flex:1;min-width:0\"><label>layer <select id=\"" << id << "-select-"
           << side << "\">";
      for (size_t i = 0; i < f["layers"].size(); ++i) {
        html << "<option value=\"" << i << "\""
             << (static_cast<int64_t>(i) == chosen ? " selected" : "") << ">" << i + 1 << ": "
             << html_escape(f["layers"][i].get<std::string>()) << "</option>";
      }
      html << "</select></label><div class=\"plot\" id=\"" << id << "-line-" << side
           << "\"></div></div>";
    }
    html << "</div>\n<label>configuration <select id=\"" << id << "-group\">";
    for (size_t g = 0; g < f["groups"].size(); ++g) {
      html << "<option value=\"" << g << "\">"
           << html_escape(f["groups"][g]["name"].get<std::string>()) << "</option>";
    }
    html << "</select></label>\n<div class=\"plot\" id=\"" << id << "-heat\"></div>\n";
  }
  return html.str();
}

const char* layer_series_script() {
  return R"js(
(function () {
  'use strict';
  if (typeof Plotly === 'undefined') return;
  var data = JSON.parse(document.getElementById('normlab-data').textContent);
  var palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
                 '#7f7f7f', '#bcbd22', '#17becf'];
  var config = {responsive: true, displaylogo: false};
  (data.layer_series || []).forEach(function (f, k) {
    var id = 'layers-' + k;
    function line(side) {
      var select = document.getElementById(id + '-select-' + side);
      var l = Number(select.value) || 0;
      var traces = f.groups.map(function (g) {
        return {x: g.epochs, y: g.mean[l], mode: 'lines+markers', name: g.name,
                line: {color: palette[g.index % palette.length]},
                error_y: {type: 'data', array: g.sd[l], visible: g.n > 1, thickness: 1}};
      });
      Plotly.react(id + '-line-' + side, traces, {
        title: f.family + ', layer ' + (l + 1) + ' (' + f.layers[l] + '): mean \u00b1 std over seeds',
        xaxis: {title: 'epoch'}, yaxis: {title: f.family}}, config);
    }
    function heat() {
      var g = f.groups[Number(document.getElementById(id + '-group').value) || 0];
      Plotly.react(id + '-heat', [{type: 'heatmap', x: g.epochs,
                                   y: f.layers.map(function (n, i) { return (i + 1) + ': ' + n; }),
                                   z: g.mean, colorscale: 'Viridis',
                                   colorbar: {title: f.family}}],
                   {title: f.family + ' by layer and epoch: ' + g.name + ' (mean over seeds)',
                    xaxis: {title: 'epoch'}, yaxis: {title: 'layer', autorange: 'reversed'}},
                   config);
    }
    [0, 1].forEach(function (side) {
      document.getElementById(id + '-select-' + side).addEventListener('change', function () {
        line(side);
      });
      line(side);
    });
    document.getElementById(id + '-group').addEventListener('change', heat);
    heat();
  });
})();
)js";
}

}  // namespace normlab::report
