#include "core/path_pattern.h"

#include <vector>

namespace normlab {
namespace {

std::vector<std::string> split_path(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = s.find('.', start);
    parts.push_back(s.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

// Glob within one component: '*' matches any run of characters (possibly empty).
bool component_matches(const std::string& pat, const std::string& text) {
  size_t p = 0, t = 0, star = std::string::npos, resume = 0;
  while (t < text.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pat.size() && pat[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

}  // namespace

bool path_matches(const std::string& pattern, const std::string& path) {
  if (pattern.empty()) return false;
  const auto pat = split_path(pattern);
  const auto name = split_path(path);
  if (pat.size() > name.size()) return false;
  for (size_t i = 0; i < pat.size(); ++i) {
    if (!component_matches(pat[i], name[i])) return false;
  }
  return true;
}

}  // namespace normlab
