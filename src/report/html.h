// Small text helpers shared by the report's sections.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace normlab::report {

// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string html_escape(const std::string& text);

// A value for a table cell: 4 significant digits, "NaN" for NaN.
std::string table_number(double value);

// Significant digits kept for plotted values (the tables print from full precision).
constexpr int kPlotDigits = 5;

// A value rounded for plotting; NaN and infinities become null (Plotly draws a gap).
nlohmann::json plot_value(double value);
// Rows of plot_value()s: a matrix or a surface's z.
nlohmann::json plot_rows(const std::vector<std::vector<double>>& rows);

}  // namespace normlab::report
