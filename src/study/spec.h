// A study file (TOML) and its expansion into runs.
//
//   [study]    name, description, seeds = [..]
//   [pretrain] optional: a run config trained once; runs use it with model.weights = "pretrain".
//              A grid point may set pretrain.<key> (a source model with and without BN): each
//              distinct pretraining config trains once; [study] pretrain_per_seed = true gives
//              each seed its own.
//   [run]      the base run config (see study/config.cpp for every key and default)
//   [grid]     "dotted.key" = [values...]: the points the runs sit on, times seeds: axes,
//              named-variant axes, zipped axes, include points and named sub-grids (grid.h)
//   [smoke]    optional overrides for a tiny variant (--smoke): seeds, [smoke.run],
//              [smoke.pretrain], [smoke.grid] (replaces the values of the axes it names, in
//              [grid] or, as [smoke.grid.NAME], in a sub-grid; a zip or include list it gives
//              replaces that grid's)
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "study/config.h"
#include "study/grid.h"

namespace normlab::study {

struct Spec {
  std::string path;  // file it came from ("" for inline text)
  std::string text;  // the file's text, recorded in the store
  std::string name;
  std::string description;
  std::vector<int64_t> seeds{0};
  std::optional<Json> pretrain;  // overlay for the pretraining run
  // One pretraining per seed (each seed's runs start from their own), not one for all.
  bool pretrain_per_seed = false;
  Json run = Json::object();  // overlay for every run
  std::vector<Grid> grids;    // [grid] first, then its named sub-grids
  std::optional<Json> smoke;  // {"seeds": [...], "run": {...}, "pretrain": {...}}
};

// Parses TOML text; `where` names the file in messages. Throws Error on a syntax error (with
// line and column), an unknown section or key, or a wrongly typed value.
Spec parse_spec(const std::string& text, const std::string& where);
Spec load_spec(const std::string& path);

// Where a run's values came from: dotted key -> "[run]", "[smoke.run]", "--set", "[grid]",
// "[study] seeds", "[pretrain]", ... Keys absent here have their default.
using Provenance = std::map<std::string, std::string>;

struct RunPlan {
  std::string name;   // "head.norm=bn clip_norm=0.1 seed=0"
  std::string group;  // the same without the seed
  Json config;        // fully resolved
  std::string role;   // "pretrain" or "run"
  Provenance sources;
};

// Every leaf of a config as (dotted key, value), in key order; open tables
// (model.norm_overrides) are leaves.
std::vector<std::pair<std::string, Json>> config_leaves(const Json& config);

struct Plan {
  std::string study_name;
  // The pretraining runs the runs start from (model.weights = "pretrain"): one per distinct
  // pretraining config, in order of first use.
  std::vector<RunPlan> pretrains;
  std::vector<RunPlan> runs;
  // Points of different grids that resolve to the same config and seed run once, under the
  // first name: (the later name, the name it runs under).
  std::vector<std::pair<std::string, std::string>> same_runs;
};

struct ExpandOptions {
  std::vector<std::pair<std::string, std::string>> sets;  // --set key=value, in order
  bool smoke = false;
};

// Resolves every run's config (defaults <- [run] <- --set <- grid point <- seed). A --set on
// a grid axis's key narrows that axis to the one value, and AXIS=NAME narrows a variant axis
// to that variant; a --set on a key that a variant, zip or include point also sets is an
// error naming both (the point would override it). "study.seeds=[..]" replaces the seeds;
// "pretrain.<key>=v" sets a key of the pretraining run. Everything is validated here, before
// any store is opened.
Plan expand(const Spec& spec, const ExpandOptions& options);

}  // namespace normlab::study
