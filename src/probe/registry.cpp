#include "probe/registry.h"

#include "core/error.h"

namespace normlab::probe {

void register_builtin_probes(std::vector<ProbeInfo>& table) {
  table.push_back(grad_norms_probe());
  table.push_back(grad_hist_probe());
  table.push_back(weight_hist_probe());
  table.push_back(clip_probe());
  table.push_back(update_ratio_probe());
  table.push_back(landscape_probe());
  table.push_back(interpolation_probe());
  table.push_back(esm_probe());
  table.push_back(smoothness_probe());
}

const std::vector<ProbeInfo>& probes() {
  static const std::vector<ProbeInfo> table = [] {
    std::vector<ProbeInfo> t;
    register_builtin_probes(t);
    return t;
  }();
  return table;
}

const ProbeInfo& find_probe(const std::string& name) {
  std::string known;
  for (const auto& p : probes()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  throw Error("probe '" + name + "'", "unknown probe", "known probes: " + known);
}

Json default_probe_options() {
  Json out = Json::object();
  for (const auto& p : probes()) out[p.name] = p.defaults;
  return out;
}

}  // namespace normlab::probe
