#include "report/surfaces.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "report/html.h"

namespace normlab::report {

using json = nlohmann::json;

json surface_data(const std::vector<RunSurfaces>& runs) {
  json out = json::array();
  for (const auto& run : runs) {
    std::map<std::string, std::vector<const store::SurfaceRecord*>> by_name;
    for (const auto& r : run.records) by_name[r.name].push_back(&r);
    for (auto& [name, records] : by_name) {
      std::stable_sort(records.begin(), records.end(),
                       [](const auto* a, const auto* b) { return a->epoch < b->epoch; });
      const store::Surface& last = records.back()->surface;
      json entry = {{"name", name},
                    {"group", run.group},
                    {"run", run.run},
                    {"kind", last.y.size() == 1 ? "curve" : "surface"},
                    {"epoch", records.back()->epoch},
                    {"x_label", last.x_label},
                    {"y_label", last.y_label},
                    {"z_label", last.z_label},
                    {"x", last.x},
                    {"y", last.y},
                    {"z", plot_rows(last.z)},
                    {"epochs", json::array()},
                    {"z_by_epoch", json::array()}};
      for (const auto* r : records) {
        // Every epoch on the last one's grid; a surface drawn on another grid is left out.
        if (r->surface.x != last.x || r->surface.y != last.y) continue;
        entry["epochs"].push_back(r->epoch);
        entry["z_by_epoch"].push_back(plot_rows(r->surface.z));
      }
      out.push_back(std::move(entry));
    }
  }
  return out;
}

std::string surface_sections(const json& surfaces) {
  std::ostringstream html;
  for (size_t k = 0; k < surfaces.size(); ++k) {
    const json& s = surfaces[k];
    const std::string id = "surface-" + std::to_string(k);
    html << "<div class=\"surface-panel\"><h4>" << html_escape(s["name"].get<std::string>()) << ": "
         << html_escape(s["group"].get<std::string>()) << " <span class=\"note\">("
         << html_escape(s["run"].get<std::string>()) << ")</span></h4>\n";
    if (s["epochs"].size() > 1) {
      html << "<label>epoch <select id=\"" << id << "-epoch\">";
      for (size_t e = 0; e < s["epochs"].size(); ++e) {
        const bool last = e + 1 == s["epochs"].size();
        html << "<option value=\"" << e << "\"" << (last ? " selected" : "") << ">"
             << s["epochs"][e].get<int64_t>() + 1 << "</option>";
      }
      html << "</select></label>\n";
    }
    html << "<div class=\"plot-row\"><div class=\"plot\" id=\"" << id << "\"></div>";
    if (s["kind"] == "surface") html << "<div class=\"plot\" id=\"" << id << "-3d\"></div>";
    html << "</div></div>\n";
  }
  return html.str();
}

const char* surface_script() {
  return R"js(
(function () {
  'use strict';
  if (typeof Plotly === 'undefined') return;
  var data = JSON.parse(document.getElementById('normlab-data').textContent);
  var config = {responsive: true, displaylogo: false};
  (data.surfaces || []).forEach(function (s, k) {
    var id = 'surface-' + k;
    var select = s.epochs.length > 1 ? document.getElementById(id + '-epoch') : null;
    function draw() {
      var e = select ? Number(select.value) : s.epochs.length - 1;
      var z = e >= 0 && e < s.z_by_epoch.length ? s.z_by_epoch[e] : s.z;
      var epoch = e >= 0 && e < s.epochs.length ? s.epochs[e] : s.epoch;
      var title = s.name + ': ' + s.run + ' (after epoch ' + (epoch + 1) + ')';
      if (s.kind === 'curve') {
        Plotly.react(id, [{x: s.x, y: z[0], mode: 'lines+markers', name: s.z_label}],
                     {title: title, xaxis: {title: s.x_label}, yaxis: {title: s.z_label}}, config);
        return;
      }
      Plotly.react(id, [{type: 'contour', x: s.x, y: s.y, z: z, colorscale: 'Viridis',
                         contours: {coloring: 'heatmap'}, colorbar: {title: s.z_label}}],
                   {title: title, xaxis: {title: s.x_label}, yaxis: {title: s.y_label}}, config);
      Plotly.react(id + '-3d', [{type: 'surface', x: s.x, y: s.y, z: z, colorscale: 'Viridis',
                                 showscale: false}],
                   {title: title + ', 3-D', scene: {xaxis: {title: s.x_label},
                    yaxis: {title: s.y_label}, zaxis: {title: s.z_label}}}, config);
    }
    if (select) select.addEventListener('change', draw);
    draw();
  });
})();
)js";
}

}  // namespace normlab::report
