// Surfaces in the report: 2-D loss landscapes drawn as a contour and a 3-D surface side by
// side, 1-D curves (one-row surfaces such as the interpolation probe's) as lines, and, where a
// run recorded a surface at several epochs, an epoch <select>.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/records.h"

namespace normlab::report {

struct RunSurfaces {
  std::string group;
  std::string run;
  std::vector<store::SurfaceRecord> records;  // any order
};

// One entry per (configuration, surface name): {name, group, run, kind ("surface" or
// "curve"), x/y/z labels, x, y, epoch and z of the last epoch, epochs and z_by_epoch}.
nlohmann::json surface_data(const std::vector<RunSurfaces>& runs);

// The page's HTML for surface_data(): a heading per entry, the epoch <select> and the plots.
std::string surface_sections(const nlohmann::json& surfaces);

// The script drawing them (an IIFE reading the page's normlab-data element).
const char* surface_script();

}  // namespace normlab::report
