#include "models/norm_slots.h"

#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace normlab::models {
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

NormFactory::NormFactory(std::vector<std::pair<std::string, std::string>> overrides,
                         nn::NormOptions options)
    : overrides_(std::move(overrides)), used_(overrides_.size(), false), options_(options) {}

torch::nn::AnyModule NormFactory::make(const std::string& path, const std::string& spec,
                                       int64_t channels, nn::NormInput input) {
  slots_.push_back(path);
  const std::string* chosen = &spec;
  for (size_t i = 0; i < overrides_.size(); ++i) {
    if (path_matches(overrides_[i].first, path)) {
      chosen = &overrides_[i].second;
      used_[i] = true;
    }
  }
  return nn::make_norm(*chosen, channels, input, options_);
}

void NormFactory::check_every_override_used() const {
  for (size_t i = 0; i < overrides_.size(); ++i) {
    if (used_[i]) continue;
    std::string examples;
    for (size_t j = 0; j < slots_.size() && j < 6; ++j) {
      examples += (examples.empty() ? "" : ", ") + slots_[j];
    }
    if (slots_.size() > 6) examples += ", ... (" + std::to_string(slots_.size()) + " in all)";
    throw Error("norm override '" + overrides_[i].first + "'", "matches no norm slot of the model",
                slots_.empty() ? "this model has no norm slots"
                               : "norm slots are module paths such as " + examples);
  }
}

}  // namespace normlab::models
