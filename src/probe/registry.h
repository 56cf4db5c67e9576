// The probe registry: every probe a study can turn on, by name, with its options and their
// defaults. A probe is a train::Observer made from its options for one run; its options live
// in the run config at `probe.<name>` (the defaults below are the config schema, so unknown
// options are refused with the key named). Adding a probe = one file exposing a ProbeInfo
// plus one line in register_builtin_probes (registry.cpp). `normlab probes list` prints this.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/model.h"
#include "train/clip.h"
#include "train/observer.h"

namespace normlab::probe {

using Json = nlohmann::json;

// What a probe instance learns about its run when it is made.
struct ProbeSetup {
  models::ClassifierImpl* model = nullptr;
  const train::NamedParams* trainable = nullptr;
  train::ClipOptions clip;
  uint64_t seed = 0;
  std::string run;        // the run's name, for messages
  std::string dir;        // the run's directory, for what a probe keeps across a resume or exports
  bool progress = false;  // a long probe may print a progress line (the study's -q turns it off)
};

struct ProbeInfo {
  std::string name;
  std::string summary;  // one line for `normlab probes list`
  Json defaults;        // every option with its default; "enabled" turns the probe on
  std::map<std::string, std::string> help;  // option -> one-line description
  // Semantic checks beyond the types (those are checked against `defaults` by the config
  // layer): throws Error naming `where` and the key.
  std::function<void(const Json& options, const std::string& where)> check;
  // Optional checks against the built model at plan time, before any training (e.g. the
  // model has the layers the probe measures): throws Error naming `where` and the key.
  std::function<void(const Json& options, torch::nn::Module& model, const std::string& where)>
      check_model;
  // Patterns in the options that must match a parameter or module of the model ("params").
  std::function<std::vector<std::string>(const Json& options)> patterns;
  std::function<std::unique_ptr<train::Observer>(const Json& options, const ProbeSetup& setup)>
      make;
};

// Every registered probe, in registration order (filled once by register_builtin_probes).
const std::vector<ProbeInfo>& probes();
// Throws Error listing the known probes when `name` is not one of them.
const ProbeInfo& find_probe(const std::string& name);
// {name: defaults} for every probe: the `probe` table of the run config's schema.
Json default_probe_options();

// The one list of built-in probes.
void register_builtin_probes(std::vector<ProbeInfo>& table);

// The probes' ProbeInfo, one per file.
ProbeInfo grad_norms_probe();
ProbeInfo grad_hist_probe();
ProbeInfo weight_hist_probe();
ProbeInfo clip_probe();
ProbeInfo update_ratio_probe();
ProbeInfo landscape_probe();
ProbeInfo interpolation_probe();
ProbeInfo esm_probe();
ProbeInfo smoothness_probe();

}  // namespace normlab::probe
