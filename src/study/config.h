// Run configuration: a JSON tree in which every field has a default. A user's values
// (study file, grid point, --set) are merged over the defaults; an unknown key or a value of
// the wrong type is refused with its dotted name. The fully resolved tree is what the store
// records (and hashes) for each run.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace normlab::study {

using Json = nlohmann::json;

// The defaults: every key a run config may contain.
const Json& default_run_config();

// Merges `overlay` into `base` (in place). Every key of overlay must exist in `schema`
// (normally default_run_config()) with a compatible type; `where` names the source for
// messages (e.g. "studies/q.toml [run]").
void merge_config(Json& base, const Json& overlay, const std::string& where,
                  const Json& schema = default_run_config());

// Sets one dotted key ("train.optimizer.lr") from a JSON value, with the same checks.
void set_config_value(Json& config, const std::string& dotted_key, const Json& value,
                      const std::string& where);

// Parses the value half of "--set key=value": JSON/TOML-like literals (numbers, true/false,
// [arrays], "quoted"), otherwise a bare string.
Json parse_cli_value(const std::string& text);

// Value at a dotted key; throws Error if absent.
const Json& config_at(const Json& config, const std::string& dotted_key);

// Canonical text of a config (sorted keys, fixed float formatting) used for hashing.
std::string canonical_text(const Json& config);

}  // namespace normlab::study
