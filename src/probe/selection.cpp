#include "probe/selection.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "train/params.h"

namespace normlab::probe {

namespace {

bool keyword(const std::string& s) { return s == "trainable" || s == "all"; }

std::vector<std::string> entries(const nlohmann::json& option) {
  if (option.is_string()) return {option.get<std::string>()};
  return option.get<std::vector<std::string>>();
}

}  // namespace

void check_params_option(const nlohmann::json& option, const std::string& where) {
  const bool list = option.is_array() && !option.empty();
  require(option.is_string() || list, where,
          "expected \"trainable\", \"all\", a module-path pattern or a list of them, got " +
              option.dump());
  if (list) {
    for (const auto& p : option) {
      require(p.is_string(), where, "every entry must be a string, got " + p.dump());
    }
  }
  for (const auto& e : entries(option)) require(!e.empty(), where, "empty pattern");
}

std::vector<std::string> params_patterns(const nlohmann::json& option) {
  std::vector<std::string> out;
  for (const auto& e : entries(option)) {
    if (!keyword(e)) out.push_back(e);
  }
  return out;
}

std::string layer_of(const std::string& param_name) {
  auto dot = param_name.rfind('.');
  return dot == std::string::npos ? param_name : param_name.substr(0, dot);
}

Selection select_params(models::ClassifierImpl& model, const train::NamedParams& trainable,
                        const nlohmann::json& option, const std::string& where) {
  check_params_option(option, where);
  const auto words = entries(option);
  const bool all = std::find(words.begin(), words.end(), "all") != words.end();
  const bool only_trainable = std::find(words.begin(), words.end(), "trainable") != words.end();
  auto patterns = params_patterns(option);
  Selection out;
  std::map<std::string, size_t> layer_index;
  for (const auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    bool pick = all;
    if (only_trainable) {
      pick =
          std::find(trainable.names.begin(), trainable.names.end(), name) != trainable.names.end();
    }
    for (const auto& p : patterns) pick = pick || train::pattern_matches(p, name);
    if (!pick) continue;
    out.params.push_back({name, {item.value()}});
    auto layer = layer_of(name);
    auto [it, fresh] = layer_index.emplace(layer, out.layers.size());
    if (fresh) out.layers.push_back({layer, {}});
    out.layers[it->second].params.push_back(item.value());
  }
  require(!out.params.empty(), where, "selects no parameter of the model",
          "check the patterns against `normlab config show` / the model's module paths");
  return out;
}

}  // namespace normlab::probe
