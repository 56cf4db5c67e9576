// The difference of two configurations' histograms in the report (S2's figures 8-9, "difference
// in weights" between runs): per histogram family with two or more configurations, a panel
// with <select>s for A, B and the item, drawing A - B of their normalised heatmaps (the first
// stage, columns aligned by position, bins as recorded) on a diverging colour scale.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace normlab::report {

// The panels' HTML, given the report's histogram panels ([{family, group, run, stages,
// items: [{name, zmax, plots: [{x, y, z, ...}]}]}], in family order).
std::string histogram_diff_sections(const nlohmann::json& panels);

// The script drawing them (an IIFE reading the page's normlab-data element).
const char* histogram_diff_script();

}  // namespace normlab::report
