#include "study/spec.h"

#include <toml++/toml.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "study/plan_check.h"
#include "study/run_options.h"

namespace normlab::study {
namespace {

Json to_json(const toml::node& node, const std::string& where, const std::string& key) {
  if (auto t = node.as_table()) {
    Json out = Json::object();
    for (const auto& [k, v] : *t) {
      std::string name(k.str());
      out[name] = to_json(v, where, key.empty() ? name : key + "." + name);
    }
    return out;
  }
  if (auto a = node.as_array()) {
    Json out = Json::array();
    for (const auto& v : *a) out.push_back(to_json(v, where, key));
    return out;
  }
  if (auto v = node.as_string()) return Json(v->get());
  if (auto v = node.as_integer()) return Json(v->get());
  if (auto v = node.as_floating_point()) return Json(v->get());
  if (auto v = node.as_boolean()) return Json(v->get());
  throw Error(where + ": key '" + key + "'", "dates and times are not valid config values");
}

// Flattens {"a": {"b": [..]}} into ("a.b", [..]); a grid leaf must be a list.
void flatten_grid(const Json& node, const std::string& prefix, const std::string& where,
                  std::vector<GridAxis>& out) {
  for (const auto& item : node.items()) {
    std::string key = prefix.empty() ? item.key() : prefix + "." + item.key();
    if (prefix.empty() && !default_run_config().contains(key.substr(0, key.find('.')))) {
      // Named variants: each a table of settings applied together, labelled by its name.
      const Json& list = item.value();
      require(list.is_array() && !list.empty(), where + ": [grid] key '" + key + "'",
              "is not a config key, so it names a variant axis: a non-empty list of tables "
              "{name = \"...\", <settings>}");
      GridAxis axis{key, {}, true};
      std::set<std::string> names;
      for (const auto& v : list) {
        require(v.is_object() && v.contains("name") && v["name"].is_string(),
                where + ": [grid] key '" + key + "'",
                "each variant must be a table with a string 'name', got " + v.dump());
        require(names.insert(v["name"].get<std::string>()).second,
                where + ": [grid] key '" + key + "'",
                "two variants are named '" + v["name"].get<std::string>() + "'");
        axis.values.push_back(v);
      }
      out.push_back(std::move(axis));
      continue;
    }
    if (item.value().is_object()) {
      flatten_grid(item.value(), key, where, out);
      continue;
    }
    require(item.value().is_array() && !item.value().empty(), where + ": [grid] key '" + key + "'",
            "a grid axis must be a non-empty list of values");
    GridAxis axis{key, {}};
    for (const auto& v : item.value()) axis.values.push_back(v);
    out.push_back(std::move(axis));
  }
}

std::vector<int64_t> parse_seeds(const Json& v, const std::string& where) {
  require(v.is_array() && !v.empty(), where + ": key 'seeds'",
          "must be a non-empty list of integers");
  std::vector<int64_t> seeds;
  for (const auto& s : v) {
    require(s.is_number_integer() && s.get<int64_t>() >= 0, where + ": key 'seeds'",
            "seeds must be non-negative integers, got " + s.dump());
    seeds.push_back(s.get<int64_t>());
  }
  return seeds;
}

void check_keys(const Json& table, const std::vector<std::string>& allowed,
                const std::string& where) {
  for (const auto& item : table.items()) {
    bool ok = false;
    for (const auto& a : allowed) ok = ok || a == item.key();
    if (!ok) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw Error(where + ": key '" + item.key() + "'", "unknown key", "known keys: " + list);
    }
  }
}

std::string format_value(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("name")) return v["name"].get<std::string>();  // a variant
  return v.dump();
}

// Short axis labels: the last key component, or the last two where that is ambiguous.
std::vector<std::string> axis_labels(const std::vector<GridAxis>& grid) {
  auto last = [](const std::string& k, int n) {
    size_t pos = k.size();
    for (int i = 0; i < n && pos != std::string::npos; ++i) {
      pos = pos == 0 ? std::string::npos : k.rfind('.', pos - 1);
    }
    return pos == std::string::npos ? k : k.substr(pos + 1);
  };
  std::vector<std::string> labels;
  for (const auto& a : grid) {
    std::string l = last(a.key, 1);
    int clashes = 0;
    for (const auto& b : grid) clashes += last(b.key, 1) == l;
    labels.push_back(clashes > 1 ? last(a.key, 2) : l);
  }
  return labels;
}

// Marks every leaf key `overlay` sets as coming from `source`.
void mark(Provenance& p, const Json& overlay, const std::string& source, const Json& schema,
          const std::string& prefix = "") {
  for (const auto& item : overlay.items()) {
    const std::string key = prefix.empty() ? item.key() : prefix + "." + item.key();
    const Json* def =
        schema.is_object() && schema.contains(item.key()) ? &schema[item.key()] : nullptr;
    if (item.value().is_object() && def != nullptr && def->is_object() && !def->empty()) {
      mark(p, item.value(), source, *def, key);
    } else {
      p[key] = source;
    }
  }
}

// {"a": {"b": v}} for "a.b" = v.
Json nested(const std::string& dotted, const Json& value) {
  Json out = value;
  size_t end = dotted.size();
  while (true) {
    size_t dot = dotted.rfind('.', end - 1);
    std::string part = dotted.substr(dot == std::string::npos ? 0 : dot + 1,
                                     end - (dot == std::string::npos ? 0 : dot + 1));
    out = Json{{part, out}};
    if (dot == std::string::npos) break;
    end = dot;
  }
  return out;
}

void leaves(const Json& node, const Json& schema, const std::string& prefix,
            std::vector<std::pair<std::string, Json>>& out) {
  for (const auto& item : node.items()) {
    const std::string key = prefix.empty() ? item.key() : prefix + "." + item.key();
    const Json* def =
        schema.is_object() && schema.contains(item.key()) ? &schema[item.key()] : nullptr;
    if (item.value().is_object() && def != nullptr && def->is_object() && !def->empty()) {
      leaves(item.value(), *def, key, out);
    } else {
      out.emplace_back(key, item.value());
    }
  }
}

}  // namespace

std::vector<std::pair<std::string, Json>> config_leaves(const Json& config) {
  std::vector<std::pair<std::string, Json>> out;
  leaves(config, default_run_config(), "", out);
  return out;
}

namespace {

// A --set value: JSON (`[0, 1]`, `"ln"`, `{"pattern": "x", "lr": 1e-4}`), else TOML as a study
// file writes it (`[{ pattern = "x", lr = 1e-4 }]`), else the text as a string.
Json parse_set_value(const std::string& text, const std::string& from) {
  Json value = parse_cli_value(text);
  if (!value.is_string() || text.empty() || (text.front() != '[' && text.front() != '{')) {
    return value;
  }
  try {
    const toml::table t = toml::parse("v = " + text, from);
    return to_json(*t.get("v"), from, "v");
  } catch (const toml::parse_error&) {
    return value;
  }
}

}  // namespace

Spec parse_spec(const std::string& text, const std::string& where) {
  Spec spec;
  spec.path = where;
  spec.text = text;
  toml::table root;
  try {
    root = toml::parse(text, where);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << "line " << e.source().begin.line << ", column " << e.source().begin.column << ": "
       << e.description();
    throw Error(where, "TOML syntax error at " + os.str());
  }
  Json doc = to_json(root, where, "");
  check_keys(doc, {"study", "pretrain", "run", "grid", "smoke"}, where + " (top level)");

  if (doc.contains("study")) {
    const Json& s = doc["study"];
    require(s.is_object(), where + ": [study]", "must be a table");
    check_keys(s, {"name", "description", "seeds"}, where + " [study]");
    if (s.contains("name")) {
      require(s["name"].is_string(), where + ": key 'study.name'", "must be a string");
      spec.name = s["name"].get<std::string>();
    }
    if (s.contains("description")) {
      require(s["description"].is_string(), where + ": key 'study.description'",
              "must be a string");
      spec.description = s["description"].get<std::string>();
    }
    if (s.contains("seeds")) spec.seeds = parse_seeds(s["seeds"], where + " [study]");
  }
  if (spec.name.empty()) spec.name = "study";

  // Validate overlays now, against the defaults, so errors name the file and section.
  if (doc.contains("run")) {
    Json probe = default_run_config();
    merge_config(probe, doc["run"], where + " [run]");
    spec.run = doc["run"];
  }
  if (doc.contains("pretrain")) {
    Json probe = default_run_config();
    merge_config(probe, doc["pretrain"], where + " [pretrain]");
    spec.pretrain = doc["pretrain"];
  }
  if (doc.contains("grid")) {
    require(doc["grid"].is_object(), where + ": [grid]", "must be a table");
    flatten_grid(doc["grid"], "", where, spec.grid);
  }
  if (doc.contains("smoke")) {
    const Json& s = doc["smoke"];
    require(s.is_object(), where + ": [smoke]", "must be a table");
    check_keys(s, {"seeds", "run", "pretrain", "grid"}, where + " [smoke]");
    if (s.contains("seeds")) parse_seeds(s["seeds"], where + " [smoke]");
    if (s.contains("grid")) {
      require(s["grid"].is_object(), where + ": [smoke.grid]", "must be a table");
      std::vector<GridAxis> axes;
      flatten_grid(s["grid"], "", where + " [smoke]", axes);
      for (const auto& a : axes) {
        require(std::any_of(spec.grid.begin(), spec.grid.end(),
                            [&](const GridAxis& g) { return g.key == a.key; }),
                where + ": [smoke.grid] key '" + a.key + "'", "is not an axis of [grid]",
                "[smoke.grid] replaces the values of [grid] axes");
      }
    }
    for (const char* part : {"run", "pretrain"}) {
      if (!s.contains(part)) continue;
      Json probe = default_run_config();
      merge_config(probe, s[part], where + " [smoke." + part + "]");
    }
    spec.smoke = s;
  }
  return spec;
}

Spec load_spec(const std::string& path) { return parse_spec(read_file_text(path), path); }

Plan expand(const Spec& spec, const ExpandOptions& options) {
  const std::string where = spec.path.empty() ? "study" : spec.path;
  const Json& schema = default_run_config();
  Json base = default_run_config();
  merge_config(base, spec.run, where + " [run]");
  Provenance base_src, pre_src;
  mark(base_src, spec.run, "[run]", schema);
  std::optional<Json> pre;
  if (spec.pretrain) {
    pre = default_run_config();
    merge_config(*pre, *spec.pretrain, where + " [pretrain]");
    mark(pre_src, *spec.pretrain, "[pretrain]", schema);
  }
  std::vector<int64_t> seeds = spec.seeds;
  std::vector<GridAxis> grid = spec.grid;
  if (options.smoke) {
    require(spec.smoke.has_value(), where, "has no [smoke] section", "add one, or drop --smoke");
    const Json& s = *spec.smoke;
    if (s.contains("seeds")) seeds = parse_seeds(s["seeds"], where + " [smoke]");
    if (s.contains("grid")) {
      // [smoke.grid] replaces the values of the axes it names.
      std::vector<GridAxis> axes;
      flatten_grid(s["grid"], "", where + " [smoke]", axes);
      for (const auto& a : axes) {
        for (auto& g : grid) {
          if (g.key == a.key) g.values = a.values;
        }
      }
    }
    if (s.contains("run")) {
      merge_config(base, s["run"], where + " [smoke.run]");
      mark(base_src, s["run"], "[smoke.run]", schema);
    }
    if (s.contains("pretrain")) {
      require(pre.has_value(), where + " [smoke.pretrain]", "the study has no [pretrain]");
      merge_config(*pre, s["pretrain"], where + " [smoke.pretrain]");
      mark(pre_src, s["pretrain"], "[smoke.pretrain]", schema);
    }
  }
  for (const auto& [key, text] : options.sets) {
    std::string from = "--set " + key + "=" + text;
    Json value = parse_set_value(text, from);
    if (key == "study.seeds") {
      seeds = parse_seeds(value.is_array() ? value : Json::array({value}), from);
      continue;
    }
    if (key.rfind("pretrain.", 0) == 0) {
      require(pre.has_value(), from, "the study has no [pretrain] section");
      set_config_value(*pre, key.substr(9), value, from);
      mark(pre_src, nested(key.substr(9), value), "--set", schema);
      continue;
    }
    auto axis = std::find_if(grid.begin(), grid.end(),
                             [&](const GridAxis& a) { return a.variant && a.key == key; });
    if (axis != grid.end()) {
      // --set AXIS=NAME runs that variant only.
      std::string known;
      for (const auto& v : axis->values) {
        if (v["name"] == value) {
          axis->values = {v};
          known.clear();
          break;
        }
        known += (known.empty() ? "" : ", ") + v["name"].get<std::string>();
      }
      require(known.empty(), from, "no variant is named " + value.dump(), "variants: " + known);
      continue;
    }
    for (auto& axis : grid) {
      if (axis.key == key) axis.values = {value};
    }
    set_config_value(base, key, value, from);
    mark(base_src, nested(key, value), "--set", schema);
  }

  Plan plan;
  plan.study_name = spec.name;
  std::string pretrain_ref;
  if (pre) {
    (*pre)["seed"] = seeds.front();
    validate_run_config(*pre, where + " [pretrain]");
    pre_src["seed"] = "[study] seeds (the first)";
    RunPlan p{"pretrain", "pretrain", *pre, "pretrain", pre_src};
    plan.pretrain = p;
    pretrain_ref = "pretrain:" + sha256_hex(canonical_text(*pre)).substr(0, 16);
  }

  auto labels = axis_labels(grid);
  size_t points = 1;
  for (const auto& axis : grid) points *= axis.values.size();
  for (int64_t seed : seeds) {
    for (size_t p = 0; p < points; ++p) {
      Json cfg = base;
      Provenance src = base_src;
      std::string group;
      size_t rest = p;
      // The last axis varies fastest, like nested loops written in file order.
      std::vector<size_t> index(grid.size());
      for (size_t a = grid.size(); a-- > 0;) {
        index[a] = rest % grid[a].values.size();
        rest /= grid[a].values.size();
      }
      for (size_t a = 0; a < grid.size(); ++a) {
        const Json& v = grid[a].values[index[a]];
        if (grid[a].variant) {
          Json overlay = v;
          overlay.erase("name");
          const std::string from = "[grid] " + grid[a].key + "=" + v["name"].get<std::string>();
          merge_config(cfg, overlay, where + " " + from);
          mark(src, overlay, from, schema);
        } else {
          set_config_value(cfg, grid[a].key, v, where + " [grid]");
          mark(src, nested(grid[a].key, v), "[grid]", schema);
        }
        group += (group.empty() ? "" : " ") + labels[a] + "=" + format_value(v);
      }
      if (group.empty()) group = spec.name;
      cfg["seed"] = seed;
      src["seed"] = "[study] seeds";
      if (cfg["model"]["weights"] == "pretrain") {
        require(!pretrain_ref.empty(), where + ": key 'model.weights'",
                "is \"pretrain\" but the study has no [pretrain] section");
        cfg["model"]["weights"] = pretrain_ref;
      }
      validate_run_config(cfg, where);
      plan.runs.push_back(
          {group + " seed=" + std::to_string(seed), group, cfg, "run", std::move(src)});
    }
  }
  check_plan(plan, where);
  return plan;
}

}  // namespace normlab::study
