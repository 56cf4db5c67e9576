#include "study/grid.h"

#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"
#include "study/spec.h"

namespace normlab::study {

Json nested_key(const std::string& dotted, const Json& value) {
  Json out = value;
  size_t end = dotted.size();
  while (true) {
    size_t dot = dotted.rfind('.', end - 1);
    const size_t begin = dot == std::string::npos ? 0 : dot + 1;
    out = Json{{dotted.substr(begin, end - begin), out}};
    if (dot == std::string::npos) break;
    end = dot;
  }
  return out;
}

namespace {

// Deep merge of nested settings: {"a": {"b": 1}} + {"a": {"c": 2}}.
void merge_into(Json& into, const Json& from) {
  for (const auto& item : from.items()) {
    if (item.value().is_object() && into.contains(item.key()) && into[item.key()].is_object()) {
      merge_into(into[item.key()], item.value());
    } else {
      into[item.key()] = item.value();
    }
  }
}

// A settings table as TOML gives it ({name = "x", train.lr = 1e-3} is already nested; a quoted
// "train.lr" is not) made uniformly nested.
Json normalized(const Json& settings) {
  Json out = Json::object();
  for (const auto& item : settings.items()) {
    merge_into(out, item.key().find('.') == std::string::npos
                        ? Json{{item.key(), item.value()}}
                        : nested_key(item.key(), item.value()));
  }
  return out;
}

// A run config key, or "pretrain.<key>": a key of the point's pretraining.
bool is_config_key(const std::string& key) {
  const std::string rest = key.rfind("pretrain.", 0) == 0 ? key.substr(9) : key;
  return default_run_config().contains(rest.substr(0, rest.find('.')));
}

std::string value_text(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

}  // namespace

std::vector<std::string> settings_keys(const Json& settings) {
  Json s = settings;
  s.erase("name");
  std::vector<std::string> keys;
  for (const auto& [k, v] : config_leaves(s)) keys.push_back(k);
  return keys;
}

bool keys_overlap(const std::string& a, const std::string& b) {
  auto under = [](const std::string& x, const std::string& y) {
    return x == y || (x.size() > y.size() && x.compare(0, y.size(), y) == 0 && x[y.size()] == '.');
  };
  return under(a, b) || under(b, a);
}

namespace {

// The keys one axis sets, each with how to name it in a message.
std::vector<std::pair<std::string, std::string>> axis_keys(const GridAxis& axis) {
  std::vector<std::pair<std::string, std::string>> out;
  switch (axis.kind) {
    case GridAxis::Kind::key:
      out.emplace_back(axis.key, "axis '" + axis.key + "'");
      break;
    case GridAxis::Kind::zip:
      for (const auto& k : axis.zip_keys) out.emplace_back(k, "zip of " + k);
      break;
    case GridAxis::Kind::variant:
      for (const auto& v : axis.values) {
        for (const auto& k : settings_keys(v)) {
          out.emplace_back(k, "variant " + axis.key + "=" + v["name"].get<std::string>());
        }
      }
      break;
  }
  return out;
}

GridAxis parse_variants(const std::string& key, const Json& list, const std::string& at) {
  require(list.is_array() && !list.empty(), at,
          "is not a config key, so it names a variant axis: a non-empty list of tables "
          "{name = \"...\", <settings>}",
          "or a named sub-grid: a table of axes ([grid." + key + "])");
  GridAxis axis{GridAxis::Kind::variant, key, {}, {}};
  std::set<std::string> names;
  for (const auto& v : list) {
    require(v.is_object() && v.contains("name") && v["name"].is_string(), at,
            "each variant must be a table with a string 'name', got " + v.dump());
    require(names.insert(v["name"].get<std::string>()).second, at,
            "two variants are named '" + v["name"].get<std::string>() + "'");
    axis.values.push_back(normalized(v));
  }
  return axis;
}

// [[grid.zip]]: {"a.b": [..], "c": [..]} -> one axis whose i-th value sets every key's i-th.
GridAxis parse_zip(const Json& table, const std::string& at) {
  require(table.is_object() && !table.empty(), at,
          "must be a table of axes that vary together, e.g. { \"train.lr\" = [1e-3, 1e-2], "
          "\"train.batch_size\" = [64, 256] }");
  GridAxis axis{GridAxis::Kind::zip, "zip", {}, {}};
  std::vector<std::pair<std::string, Json>> lists = config_leaves(normalized(table));
  size_t length = 0;
  for (const auto& [key, list] : lists) {
    require(is_config_key(key), at + " key '" + key + "'", "is not a config key");
    require(list.is_array() && !list.empty(), at + " key '" + key + "'",
            "must be a non-empty list of values");
    require(length == 0 || list.size() == length, at + " key '" + key + "'",
            "has " + std::to_string(list.size()) + " values but '" + lists.front().first +
                "' has " + std::to_string(length),
            "zipped axes vary together, so their lists have the same length");
    length = list.size();
    axis.zip_keys.push_back(key);
  }
  for (size_t i = 0; i < length; ++i) {
    Json point = Json::object();
    for (const auto& [key, list] : lists) merge_into(point, nested_key(key, list[i]));
    axis.values.push_back(point);
  }
  return axis;
}

void parse_include(const Json& list, const std::string& at, Grid& grid) {
  const Json items = list.is_object() ? Json::array({list}) : list;
  require(items.is_array(), at, "must be a list of tables ([[grid.include]])");
  std::set<std::string> names;
  for (const auto& point : items) {
    require(point.is_object() && !point.empty(), at,
            "each point must be a non-empty table of settings, got " + point.dump());
    if (point.contains("name")) {
      require(point["name"].is_string(), at + " key 'name'", "must be a string");
      require(names.insert(point["name"].get<std::string>()).second, at,
              "two points are named '" + point["name"].get<std::string>() + "'");
    }
    grid.include.push_back(normalized(point));
  }
}

// Adds the axes written under `node` (a table at `prefix`) to `grid`.
void parse_axes(const Json& node, const std::string& prefix, const std::string& where, Grid& grid,
                std::vector<Grid>* subgrids) {
  const std::string section = grid.name.empty() ? "[grid]" : "[grid." + grid.name + "]";
  for (const auto& item : node.items()) {
    const std::string key = prefix.empty() ? item.key() : prefix + "." + item.key();
    const std::string at = where + ": " + section + " key '" + key + "'";
    if (prefix.empty() && key == "zip") {
      const Json& v = item.value();
      for (const auto& t : v.is_array() ? v : Json::array({v})) {
        grid.axes.push_back(parse_zip(t, where + ": " + section + " zip"));
      }
      continue;
    }
    if (prefix.empty() && key == "include") {
      parse_include(item.value(), where + ": " + section + " include", grid);
      continue;
    }
    if (prefix.empty() && key == "pretrain" && item.value().is_object()) {
      parse_axes(item.value(), "pretrain", where, grid, subgrids);  // pretrain.<key> axes
      continue;
    }
    if (prefix.empty() && !is_config_key(key)) {
      if (item.value().is_object()) {
        require(subgrids != nullptr, at, "a sub-grid cannot hold another sub-grid");
        Grid sub;
        sub.name = key;
        parse_axes(item.value(), "", where, sub, nullptr);
        require(!sub.empty(), where + ": [grid." + key + "]", "has no axis and no include point");
        subgrids->push_back(std::move(sub));
      } else {
        grid.axes.push_back(parse_variants(key, item.value(), at));
      }
      continue;
    }
    if (item.value().is_object()) {
      parse_axes(item.value(), key, where, grid, subgrids);
      continue;
    }
    require(item.value().is_array() && !item.value().empty(), at,
            "a grid axis must be a non-empty list of values");
    GridAxis axis{GridAxis::Kind::key, key, {}, {}};
    for (const auto& v : item.value()) axis.values.push_back(v);
    grid.axes.push_back(std::move(axis));
  }
}

// Two axes of one grid that set the same key would silently override each other.
void check_disjoint(const Grid& grid, const std::string& where) {
  std::vector<std::pair<std::string, std::string>> seen;  // key, which axis
  for (size_t a = 0; a < grid.axes.size(); ++a) {
    auto keys = axis_keys(grid.axes[a]);
    for (const auto& [key, what] : keys) {
      for (const auto& [other, other_what] : seen) {
        require(!keys_overlap(key, other),
                where + ": " + (grid.name.empty() ? "[grid]" : "[grid." + grid.name + "]"),
                "key '" + key + "' is set by both " + other_what + " and " + what,
                "an axis sets a key once per point; combine them in one variant axis or zip");
      }
    }
    seen.insert(seen.end(), keys.begin(), keys.end());
  }
}

// Short labels for a grid's keys: the last component, or the last two where that is ambiguous.
std::map<std::string, std::string> key_labels(const std::vector<std::string>& keys) {
  auto last = [](const std::string& k, int n) {
    size_t pos = k.size();
    for (int i = 0; i < n && pos != std::string::npos; ++i) {
      pos = pos == 0 ? std::string::npos : k.rfind('.', pos - 1);
    }
    return pos == std::string::npos ? k : k.substr(pos + 1);
  };
  std::map<std::string, std::string> out;
  for (const auto& k : keys) {
    int clashes = 0;
    std::set<std::string> distinct(keys.begin(), keys.end());
    for (const auto& other : distinct) clashes += last(other, 1) == last(k, 1);
    out[k] = clashes > 1 ? last(k, 2) : last(k, 1);
  }
  return out;
}

std::string settings_label(const Json& settings, std::map<std::string, std::string>& labels) {
  if (settings.contains("name")) return settings["name"].get<std::string>();
  Json s = settings;
  std::string out;
  for (const auto& [k, v] : config_leaves(s)) {
    if (!labels.count(k)) labels[k] = k.substr(k.rfind('.') + 1);
    out += (out.empty() ? "" : " ") + labels[k] + "=" + value_text(v);
  }
  return out;
}

void add_grid_points(const Grid& grid, std::vector<GridPoint>& out) {
  const std::string section = grid.name.empty() ? "[grid]" : "[grid." + grid.name + "]";
  const std::string prefix = grid.name.empty() ? "" : grid.name + ": ";
  std::vector<std::string> keys;
  for (const auto& a : grid.axes) {
    if (a.kind == GridAxis::Kind::key) keys.push_back(a.key);
    if (a.kind == GridAxis::Kind::zip)
      keys.insert(keys.end(), a.zip_keys.begin(), a.zip_keys.end());
  }
  auto labels = key_labels(keys);
  if (!grid.axes.empty()) {
    size_t points = 1;
    for (const auto& axis : grid.axes) points *= axis.values.size();
    for (size_t p = 0; p < points; ++p) {
      std::vector<size_t> index(grid.axes.size());
      size_t rest = p;
      for (size_t a = grid.axes.size(); a-- > 0;) {
        index[a] = rest % grid.axes[a].values.size();
        rest /= grid.axes[a].values.size();
      }
      GridPoint point;
      for (size_t a = 0; a < grid.axes.size(); ++a) {
        const GridAxis& axis = grid.axes[a];
        const Json& v = axis.values[index[a]];
        std::string part;
        if (axis.kind == GridAxis::Kind::key) {
          point.overlays.emplace_back(nested_key(axis.key, v), section);
          part = labels[axis.key] + "=" + value_text(v);
        } else if (axis.kind == GridAxis::Kind::variant) {
          Json overlay = v;
          overlay.erase("name");
          part = axis.key + "=" + v["name"].get<std::string>();
          point.overlays.emplace_back(overlay, section + " " + part);
        } else {
          part = settings_label(v, labels);
          point.overlays.emplace_back(v, section + " zip " + part);
        }
        point.label += (point.label.empty() ? "" : " ") + part;
      }
      point.label = prefix + point.label;
      out.push_back(std::move(point));
    }
  }
  for (const auto& settings : grid.include) {
    GridPoint point;
    point.label = prefix + settings_label(settings, labels);
    Json overlay = settings;
    overlay.erase("name");
    point.overlays.emplace_back(overlay, section + " include " + point.label);
    out.push_back(std::move(point));
  }
}

}  // namespace

std::vector<Grid> parse_grids(const Json& table, const std::string& where) {
  require(table.is_object(), where + ": [grid]", "must be a table");
  std::vector<Grid> grids(1);
  std::vector<Grid> subgrids;
  parse_axes(table, "", where, grids.front(), &subgrids);
  for (auto& g : subgrids) grids.push_back(std::move(g));
  for (const auto& g : grids) check_disjoint(g, where);
  return grids;
}

void apply_smoke_grids(std::vector<Grid>& grids, const Json& smoke_table,
                       const std::string& where) {
  const std::vector<Grid> smoke = parse_grids(smoke_table, where);
  for (const auto& sg : smoke) {
    const std::string section = sg.name.empty() ? "[smoke.grid]" : "[smoke.grid." + sg.name + "]";
    auto grid =
        std::find_if(grids.begin(), grids.end(), [&](const Grid& g) { return g.name == sg.name; });
    require(grid != grids.end(), where + ": " + section, "the study has no [grid." + sg.name + "]");
    for (const auto& axis : sg.axes) {
      auto same = std::find_if(grid->axes.begin(), grid->axes.end(), [&](const GridAxis& a) {
        return a.kind == axis.kind && a.key == axis.key && a.zip_keys == axis.zip_keys;
      });
      const std::string what = axis.kind == GridAxis::Kind::zip ? "zip" : "key '" + axis.key + "'";
      require(
          same != grid->axes.end(), where + ": " + section + " " + what,
          "is not an axis of " + std::string(sg.name.empty() ? "[grid]" : "[grid." + sg.name + "]"),
          "[smoke.grid] replaces the values of the grid's axes");
      same->values = axis.values;
    }
    if (!sg.include.empty()) grid->include = sg.include;
  }
}

std::vector<GridPoint> grid_points(const std::vector<Grid>& grids) {
  std::vector<GridPoint> out;
  for (const auto& g : grids) add_grid_points(g, out);
  if (out.empty()) out.emplace_back();  // no axis and no point anywhere: [run] once
  return out;
}

}  // namespace normlab::study
