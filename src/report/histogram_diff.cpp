#include "report/histogram_diff.h"

#include <map>
#include <sstream>
#include <vector>

#include "report/html.h"

namespace normlab::report {

using json = nlohmann::json;

std::string histogram_diff_sections(const json& panels) {
  // family -> indices of its panels (one per configuration)
  std::map<std::string, std::vector<size_t>> families;
  std::vector<std::string> order;
  for (size_t k = 0; k < panels.size(); ++k) {
    const std::string f = panels[k]["family"].get<std::string>();
    if (!families.count(f)) order.push_back(f);
    families[f].push_back(k);
  }
  std::ostringstream html;
  size_t id = 0;
  for (const auto& f : order) {
    const auto& members = families[f];
    if (members.size() < 2) continue;
    const std::string prefix = "histdiff-" + std::to_string(id++);
    html << "<div class=\"hist-panel\" data-family=\"" << html_escape(f) << "\"><h4>"
         << html_escape(f) << ": difference A &minus; B of two configurations</h4>\n";
    for (const char* side : {"a", "b"}) {
      html << "<label>" << (side[0] == 'a' ? "A" : "B") << " <select id=\"" << prefix << "-" << side
           << "\">";
      for (size_t i = 0; i < members.size(); ++i) {
        const bool selected = (side[0] == 'b' && i == 1);
        html << "<option value=\"" << members[i] << "\"" << (selected ? " selected" : "") << ">"
             << html_escape(panels[members[i]]["group"].get<std::string>()) << "</option>";
      }
      html << "</select></label>\n";
    }
    html << "<label>item <select id=\"" << prefix << "-item\">";
    const json& items = panels[members.front()]["items"];
    for (size_t i = 0; i < items.size(); ++i) {
      html << "<option value=\"" << html_escape(items[i]["name"].get<std::string>()) << "\">"
           << html_escape(items[i]["name"].get<std::string>()) << "</option>";
    }
    html << "</select></label>\n<div class=\"plot\" id=\"" << prefix << "\"></div></div>\n";
  }
  return html.str();
}

const char* histogram_diff_script() {
  return R"js(
(function () {
  'use strict';
  if (typeof Plotly === 'undefined') return;
  var data = JSON.parse(document.getElementById('normlab-data').textContent);
  var panels = data.histograms || [];
  var config = {responsive: true, displaylogo: false};
  var families = [];
  panels.forEach(function (p) {
    var f = families.filter(function (x) { return x.name === p.family; })[0];
    if (!f) { f = {name: p.family, count: 0}; families.push(f); }
    f.count += 1;
  });
  families = families.filter(function (f) { return f.count >= 2; });
  function plotOf(panel, name) {
    var item = panel.items.filter(function (i) { return i.name === name; })[0];
    return item ? item.plots[0] : null;
  }
  families.forEach(function (f, k) {
    var id = 'histdiff-' + k;
    var a = document.getElementById(id + '-a');
    var b = document.getElementById(id + '-b');
    var item = document.getElementById(id + '-item');
    function draw() {
      var pa = plotOf(panels[Number(a.value)], item.value);
      var pb = plotOf(panels[Number(b.value)], item.value);
      var z = [], x = [], y = [], why = '';
      if (!pa || !pb) {
        why = ' (one of them has no ' + item.value + ')';
      } else if (pa.z.length !== pb.z.length) {
        why = ' (different bins)';
      } else {
        var cols = Math.min(pa.x.length, pb.x.length);
        x = pa.x.slice(0, cols);
        y = pa.y;
        z = pa.z.map(function (row, r) {
          return row.slice(0, cols).map(function (v, c) { return v - pb.z[r][c]; });
        });
      }
      Plotly.react(id, [{type: 'heatmap', x: x, y: y, z: z, zmid: 0, colorscale: 'RdBu',
                         colorbar: {title: 'A \u2212 B'}}],
                   {title: item.value + ': ' + panels[Number(a.value)].group + ' \u2212 ' +
                           panels[Number(b.value)].group + why,
                    xaxis: {title: pa ? pa.axis : ''}, yaxis: {title: pa ? pa.y_label : ''}},
                   config);
    }
    [a, b, item].forEach(function (s) { s.addEventListener('change', draw); });
    draw();
  });
})();
)js";
}

}  // namespace normlab::report
