#include "report/html.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace normlab::report {

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string table_number(double value) {
  if (std::isnan(value)) return "NaN";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", value);
  return buf;
}

nlohmann::json plot_value(double value) {
  if (!std::isfinite(value)) return nullptr;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", kPlotDigits, value);
  return std::strtod(buf, nullptr);
}

nlohmann::json plot_rows(const std::vector<std::vector<double>>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& row : rows) {
    nlohmann::json r = nlohmann::json::array();
    for (double v : row) r.push_back(plot_value(v));
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace normlab::report
