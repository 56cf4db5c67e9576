// Per-layer epoch series in the report: families of epoch scalars named
// "<family>/<layer>" with a two-part family, such as the estimation shift "esm/mu/<layer>",
// "esm/sigma/<layer>" (probe esm) and DMBN's adopted momentum "dmbn/beta/<layer>". Each family
// is drawn as (a) the series of a selectable layer over epochs, mean and std over seeds per
// configuration, twice side by side (layers 2 and 19 by default, as seed 004's figures 5.2 and
// 5.3 show), and (b) a layer x epoch heatmap of the seed mean for a selectable configuration.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace normlab::report {

using EpochSeries = std::map<std::string, std::vector<std::pair<int64_t, double>>>;

struct GroupSeries {
  std::string name;
  std::vector<const EpochSeries*> runs;  // one per seed
};

// "a/b/c": a name with a family of two parts and a layer; such series stay out of the final
// metrics table (there would be one column per layer).
bool per_layer_name(const std::string& name);

// [{family, layers, defaults: [i, j], groups: [{name, index, epochs, mean[layer][epoch],
// sd[layer][epoch], n}]}]; layers in natural order ("features.2.1" before "features.10.1").
nlohmann::json layer_series(const std::vector<GroupSeries>& groups);

// The page's HTML for layer_series(): headings, the layer and configuration <select>s and
// the plot containers.
std::string layer_series_sections(const nlohmann::json& families);

// The script drawing them (an IIFE reading the page's normlab-data element).
const char* layer_series_script();

}  // namespace normlab::report
