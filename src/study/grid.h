// A study's grids: which points of the config space its runs sit on.
//
//   [grid]                          the main grid: the cartesian product of its axes
//   "train.lr" = [1e-3, 1e-2]       an axis over one config key
//   strategy = [{ name = "dmbn", model.norm = "dmbn" }, ...]
//                                   a named-variant axis: each variant's settings apply together
//   [[grid.zip]]                    axes that vary together (equal lengths), one axis in all:
//   "train.lr" = [1e-3, 1e-2]       (lr 1e-3 with batch 64, lr 1e-2 with batch 256)
//   "train.batch_size" = [64, 256]
//   [[grid.include]]                an extra point outside the product: settings, optional name
//   name = "wide", model.width = 64
//   [grid.lr_sweep]                 a named sub-grid: its own product (axes, zip, include) over
//   "model.head.norm" = ["none"]    the base run, not combined with the main grid's axes
//   "train.lr" = [1e-4, 1e-3, 1e-2]
//
// A study's runs are the union of every grid's points (its product, plus its include points),
// times the seeds; a study with no axis and no point runs [run] once.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "study/config.h"

namespace normlab::study {

struct GridAxis {
  enum class Kind { key, variant, zip };
  Kind kind = Kind::key;
  std::string key;  // the dotted config key; the variant axis's name; "zip"
  // key: the values. variant: tables {name, <nested settings>}. zip: nested settings tables.
  std::vector<Json> values;
  std::vector<std::string> zip_keys;  // zip: the dotted keys that vary together
};

struct Grid {
  std::string name;  // "" for [grid] itself
  std::vector<GridAxis> axes;
  std::vector<Json> include;  // nested settings tables, each with an optional "name"
  bool empty() const { return axes.empty() && include.empty(); }
};

// Parses the [grid] table (nested JSON from TOML): the main grid first, then the named
// sub-grids by name. Throws Error naming `where`, the grid and the key.
std::vector<Grid> parse_grids(const Json& table, const std::string& where);

// Applies [smoke.grid] (parsed like [grid]): an axis replaces the values of the axis with the
// same key in the grid of the same name, a zip replaces the zip over the same keys, include
// points replace the grid's. Throws Error when it names something the grids do not have.
void apply_smoke_grids(std::vector<Grid>& grids, const Json& smoke_table, const std::string& where);

// The dotted keys a point's settings table sets, and whether two dotted keys overlap (equal, or
// one is a table holding the other).
std::vector<std::string> settings_keys(const Json& settings);
bool keys_overlap(const std::string& a, const std::string& b);

// One point of a grid: the overlays that make it (in order, each with where it came from, for
// provenance) and its label ("norm=bn lr=0.001", a sub-grid's prefixed "lr_sweep: ...").
struct GridPoint {
  std::string label;
  std::vector<std::pair<Json, std::string>> overlays;  // nested settings, source
};

// Every point of every grid: [grid], then the sub-grids by name. Within a grid the axes are
// taken in key order (TOML tables are unordered), the last varying fastest, and the include
// points follow the product.
std::vector<GridPoint> grid_points(const std::vector<Grid>& grids);

// {"a": {"b": v}} for "a.b" = v.
Json nested_key(const std::string& dotted, const Json& value);

}  // namespace normlab::study
