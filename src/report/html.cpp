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

nlohmann::json plot_value(double value) {
  if (!std::isfinite(value)) return nullptr;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", kPlotDigits, value);
  return std::strtod(buf, nullptr);
}

}  // namespace normlab::report
