#include "study/config.h"

#include <algorithm>

#include "core/error.h"
#include "probe/registry.h"
#include "study/run_options.h"

namespace normlab::study {
namespace {

const char* type_name(const Json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "a table";
  return "null";
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string suggestion(const std::string& key, const Json& schema) {
  std::string best;
  size_t best_d = 3;  // only suggest close spellings
  for (const auto& item : schema.items()) {
    size_t d = edit_distance(key, item.key());
    if (d < best_d) best_d = d, best = item.key();
  }
  std::string keys;
  for (const auto& item : schema.items()) keys += (keys.empty() ? "" : ", ") + item.key();
  return best.empty() ? "known keys here: " + keys : "did you mean '" + best + "'?";
}

std::string join(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

// Checks that `value` may replace `def` (the default) at `key`.
void check_type(const Json& def, const Json& value, const std::string& key,
                const std::string& where) {
  bool ok = false;
  if (def.is_boolean())
    ok = value.is_boolean();
  else if (def.is_number_integer())
    ok = value.is_number_integer();
  else if (def.is_number())
    ok = value.is_number();
  else if (def.is_string())
    ok = value.is_string();
  else if (def.is_array())
    ok = value.is_array();
  else if (def.is_object())
    ok = value.is_object();
  // A string where a list of strings is expected is a one-element list (e.g. params = "head").
  if (!ok && def.is_array() && value.is_string() && (def.empty() || def.front().is_string())) {
    ok = true;
  }
  if (!ok) {
    throw Error(where + ": key '" + key + "'", std::string("expected ") + type_name(def) +
                                                   ", got " + type_name(value) + " (" +
                                                   value.dump() + ")");
  }
  if (def.is_array() && !def.empty()) {
    for (const auto& el : value) check_type(def.front(), el, key + "[]", where);
  }
}

void merge_at(Json& base, const Json& overlay, const std::string& prefix, const std::string& where,
              const Json& schema) {
  if (!overlay.is_object()) {
    throw Error(where + (prefix.empty() ? "" : ": key '" + prefix + "'"),
                std::string("expected a table, got ") + type_name(overlay));
  }
  for (const auto& item : overlay.items()) {
    std::string key = join(prefix, item.key());
    if (!schema.contains(item.key())) {
      throw Error(where + ": key '" + key + "'", "unknown key", suggestion(item.key(), schema));
    }
    const Json& def = schema.at(item.key());
    check_type(def, item.value(), key, where);
    if (def.is_object() && def.empty()) {
      // An open table (e.g. model.norm_overrides): user-chosen keys, string values.
      for (const auto& entry : item.value().items()) {
        require(entry.value().is_string(), where + ": key '" + key + "." + entry.key() + "'",
                std::string("expected a string, got ") + type_name(entry.value()));
      }
      base[item.key()] = item.value();
    } else if (def.is_object()) {
      merge_at(base[item.key()], item.value(), key, where, def);
    } else if (def.is_array() && item.value().is_string()) {
      base[item.key()] = Json::array({item.value()});
    } else {
      base[item.key()] = item.value();
    }
  }
}

}  // namespace

const Json& default_run_config() {
  // Every default is written once, in its options struct (see describe(RunOptions)); the
  // probes' in their ProbeInfo.
  static const Json defaults = [] {
    Json d = option_defaults<RunOptions>();
    d["probe"] = probe::default_probe_options();
    d["phases"] = Json::array();  // [[run.phases]] tables (study/phases.h), checked by run_options
    return d;
  }();
  return defaults;
}

void merge_config(Json& base, const Json& overlay, const std::string& where, const Json& schema) {
  merge_at(base, overlay, "", where, schema);
}

void set_config_value(Json& config, const std::string& dotted_key, const Json& value,
                      const std::string& where) {
  // Build {"a": {"b": value}} and merge it, so the same checks apply.
  Json overlay = value;
  std::string rest = dotted_key;
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = rest.find('.', start);
    parts.push_back(rest.substr(start, dot == std::string::npos ? dot : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (const auto& p : parts) {
    require(!p.empty(), where + ": key '" + dotted_key + "'", "empty component in dotted key");
  }
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) overlay = Json{{*it, overlay}};
  merge_config(config, overlay, where);
}

Json parse_cli_value(const std::string& text) {
  if (text.empty()) return Json("");
  try {
    return Json::parse(text);
  } catch (const Json::parse_error&) {
    if (text.size() >= 2 && text.front() == '\'' && text.back() == '\'') {
      return Json(text.substr(1, text.size() - 2));
    }
    return Json(text);
  }
}

const Json& config_at(const Json& config, const std::string& dotted_key) {
  const Json* node = &config;
  size_t start = 0;
  while (true) {
    size_t dot = dotted_key.find('.', start);
    std::string part = dotted_key.substr(start, dot == std::string::npos ? dot : dot - start);
    if (!node->is_object() || !node->contains(part)) {
      throw Error("config key '" + dotted_key + "'", "does not exist");
    }
    node = &node->at(part);
    if (dot == std::string::npos) return *node;
    start = dot + 1;
  }
}

std::string canonical_text(const Json& config) {
  // nlohmann::json objects are std::map-ordered, so dump() is already key-sorted and its
  // number formatting round-trips doubles exactly.
  return config.dump();
}

}  // namespace normlab::study
