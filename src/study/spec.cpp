#include "study/spec.h"

#include <toml++/toml.h>

#include <algorithm>
#include <map>
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

void leaves(const Json& node, const Json& schema, const std::string& prefix,
            std::vector<std::pair<std::string, Json>>& out) {
  for (const auto& item : node.items()) {
    const std::string key = prefix.empty() ? item.key() : prefix + "." + item.key();
    const Json* def =
        schema.is_object() && schema.contains(item.key()) ? &schema[item.key()] : nullptr;
    if (prefix.empty() && item.key() == "pretrain" && item.value().is_object()) {
      leaves(item.value(), schema, key, out);  // a grid point's pretrain.<key> settings
    } else if (item.value().is_object() && def != nullptr && def->is_object() && !def->empty()) {
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
    check_keys(s, {"name", "description", "seeds", "pretrain_per_seed"}, where + " [study]");
    if (s.contains("pretrain_per_seed")) {
      require(s["pretrain_per_seed"].is_boolean(), where + ": key 'study.pretrain_per_seed'",
              "must be true or false");
      spec.pretrain_per_seed = s["pretrain_per_seed"].get<bool>();
    }
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
  if (doc.contains("grid")) spec.grids = parse_grids(doc["grid"], where);
  if (doc.contains("smoke")) {
    const Json& s = doc["smoke"];
    require(s.is_object(), where + ": [smoke]", "must be a table");
    check_keys(s, {"seeds", "run", "pretrain", "grid"}, where + " [smoke]");
    if (s.contains("seeds")) parse_seeds(s["seeds"], where + " [smoke]");
    if (s.contains("grid")) {
      std::vector<Grid> grids = spec.grids.empty() ? std::vector<Grid>(1) : spec.grids;
      apply_smoke_grids(grids, s["grid"], where);
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
  std::vector<Grid> grids = spec.grids;
  if (options.smoke) {
    require(spec.smoke.has_value(), where, "has no [smoke] section", "add one, or drop --smoke");
    const Json& s = *spec.smoke;
    if (s.contains("seeds")) seeds = parse_seeds(s["seeds"], where + " [smoke]");
    if (s.contains("grid")) {
      if (grids.empty()) grids.resize(1);
      apply_smoke_grids(grids, s["grid"], where);
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
  std::vector<std::pair<std::string, std::string>> config_sets;  // key, the --set as written
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
      mark(pre_src, nested_key(key.substr(9), value), "--set", schema);
      for (auto& grid : grids) {
        for (auto& axis : grid.axes) {
          if (axis.kind == GridAxis::Kind::key && axis.key == key) axis.values = {value};
        }
      }
      config_sets.emplace_back(key, from);
      continue;
    }
    bool variant_axis = false;
    for (auto& grid : grids) {
      for (auto& axis : grid.axes) {
        if (axis.kind != GridAxis::Kind::variant || axis.key != key) continue;
        // --set AXIS=NAME runs that variant only.
        variant_axis = true;
        std::string known;
        for (const auto& v : axis.values) {
          if (v["name"] == value) {
            axis.values = {v};
            known.clear();
            break;
          }
          known += (known.empty() ? "" : ", ") + v["name"].get<std::string>();
        }
        require(known.empty(), from, "no variant is named " + value.dump(), "variants: " + known);
      }
    }
    if (variant_axis) continue;
    // --set KEY=V on an axis over KEY runs that value only.
    for (auto& grid : grids) {
      for (auto& axis : grid.axes) {
        if (axis.kind == GridAxis::Kind::key && axis.key == key) axis.values = {value};
      }
    }
    set_config_value(base, key, value, from);
    mark(base_src, nested_key(key, value), "--set", schema);
    config_sets.emplace_back(key, from);
  }
  // A point's own settings are applied after --set, so a --set they overlap would be silently
  // lost on those points: refuse it, naming both.
  for (const auto& [key, from] : config_sets) {
    for (const auto& grid : grids) {
      const std::string section = grid.name.empty() ? "[grid]" : "[grid." + grid.name + "]";
      auto refuse = [&](const std::string& set_key, const std::string& what) {
        require(!keys_overlap(key, set_key), from,
                "key '" + set_key + "' is also set by " + section + " " + what +
                    ", which would override it",
                "narrow the grid instead (--set AXIS=NAME for a variant axis) or edit the "
                "study file");
      };
      for (const auto& axis : grid.axes) {
        if (axis.kind == GridAxis::Kind::key && axis.key != key) refuse(axis.key, "axis");
        if (axis.kind == GridAxis::Kind::zip) {
          for (const auto& k : axis.zip_keys) refuse(k, "zip");
        }
        if (axis.kind == GridAxis::Kind::variant) {
          for (const auto& v : axis.values) {
            for (const auto& k : settings_keys(v)) {
              refuse(k, axis.key + "=" + v["name"].get<std::string>());
            }
          }
        }
      }
      for (const auto& point : grid.include) {
        for (const auto& k : settings_keys(point)) refuse(k, "include point");
      }
    }
  }

  Plan plan;
  plan.study_name = spec.name;
  // The pretraining a run needs: [pretrain] with the point's own pretrain.* settings, seeded
  // with the study's first seed or, with [study] pretrain_per_seed, the run's. Each distinct
  // config is planned once and found by its hash.
  auto pretraining = [&](const Json& point_pre, const Provenance& point_src,
                         const std::string& label, int64_t seed, const std::string& from) {
    require(pre.has_value(), where + ": key 'model.weights'",
            "is \"pretrain\" but the study has no [pretrain] section");
    Json cfg = *pre;
    Provenance src = pre_src;
    merge_config(cfg, point_pre, where + " " + from);
    for (const auto& [k, v] : point_src) src[k] = v;
    cfg["seed"] = spec.pretrain_per_seed ? seed : seeds.front();
    src["seed"] = spec.pretrain_per_seed ? "[study] seeds" : "[study] seeds (the first)";
    const std::string ref = "pretrain:" + sha256_hex(canonical_text(cfg)).substr(0, 16);
    for (const auto& p : plan.pretrains) {
      if ("pretrain:" + sha256_hex(canonical_text(p.config)).substr(0, 16) == ref) return ref;
    }
    validate_run_config(cfg, where + " [pretrain]" + (label.empty() ? "" : " " + label));
    const std::string group = label.empty() ? "pretrain" : "pretrain " + label;
    const std::string name =
        spec.pretrain_per_seed ? group + " seed=" + std::to_string(seed) : group;
    plan.pretrains.push_back({name, group, cfg, "pretrain", src});
    return ref;
  };

  const std::vector<GridPoint> points = grid_points(grids);
  std::map<std::string, std::string> seen;  // canonical config -> run name
  for (int64_t seed : seeds) {
    for (const auto& point : points) {
      Json cfg = base;
      Provenance src = base_src;
      Json point_pre = Json::object();  // the point's pretrain.* settings
      Provenance point_pre_src;
      std::string pre_label, pre_from;
      for (const auto& [settings, from] : point.overlays) {
        Json overlay = settings;
        if (overlay.contains("pretrain")) {
          const Json part = overlay["pretrain"];
          overlay.erase("pretrain");
          Json probe = default_run_config();
          merge_config(probe, part, where + " " + from + " (pretrain)");
          merge_config(point_pre, part, where + " " + from + " (pretrain)", schema);
          mark(point_pre_src, part, from, schema);
          for (const auto& [k, v] : config_leaves(part)) {
            pre_label += (pre_label.empty() ? "" : " ") + k.substr(k.rfind('.') + 1) + "=" +
                         (v.is_string() ? v.get<std::string>() : v.dump());
          }
          pre_from = from;
        }
        merge_config(cfg, overlay, where + " " + from);
        mark(src, overlay, from, schema);
      }
      const std::string group = point.label.empty() ? spec.name : point.label;
      // With phases, train.epochs is their sum unless the study states it (then they must agree).
      if (const int64_t sum = phase_epochs(cfg); sum > 0 && !src.count("train.epochs")) {
        cfg["train"]["epochs"] = sum;
        src["train.epochs"] = "phases (their sum)";
      }
      cfg["seed"] = seed;
      src["seed"] = "[study] seeds";
      if (cfg["model"]["weights"] == "pretrain") {
        cfg["model"]["weights"] = pretraining(point_pre, point_pre_src, pre_label, seed, pre_from);
      } else {
        require(point_pre.empty(), where + " " + pre_from,
                "sets pretrain keys, but the run's model.weights is not \"pretrain\"");
      }
      validate_run_config(cfg, where + " " + (point.label.empty() ? "[run]" : point.label));
      const std::string name = group + " seed=" + std::to_string(seed);
      auto [it, fresh] = seen.emplace(canonical_text(cfg), name);
      if (!fresh) {
        plan.same_runs.emplace_back(name, it->second);
        continue;
      }
      plan.runs.push_back({name, group, cfg, "run", std::move(src)});
    }
  }
  // A [pretrain] that no run starts from still trains once (its own study, e.g. a source task).
  if (pre && plan.pretrains.empty()) pretraining(Json::object(), {}, "", seeds.front(), "");
  check_plan(plan, where);
  return plan;
}

}  // namespace normlab::study
