#include "probe/selection.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "train/params.h"

namespace normlab::probe {

void check_params_option(const nlohmann::json& option, const std::string& where) {
  if (option.is_string()) {
    require(!option.get_ref<const std::string&>().empty(), where, "empty parameter selection",
            "use \"trainable\", \"all\", a module-path pattern or a list of them");
    return;
  }
  require(option.is_array() && !option.empty(), where,
          "expected \"trainable\", \"all\" or a non-empty list of patterns, got " + option.dump());
  for (const auto& p : option) {
    require(p.is_string() && !p.get_ref<const std::string&>().empty(), where,
            "every pattern must be a non-empty string, got " + p.dump());
  }
}

std::vector<std::string> params_patterns(const nlohmann::json& option) {
  if (option.is_string()) {
    const auto& s = option.get_ref<const std::string&>();
    if (s == "trainable" || s == "all") return {};
    return {s};
  }
  return option.get<std::vector<std::string>>();
}

std::string layer_of(const std::string& param_name) {
  auto dot = param_name.rfind('.');
  return dot == std::string::npos ? param_name : param_name.substr(0, dot);
}

Selection select_params(models::ClassifierImpl& model, const train::NamedParams& trainable,
                        const nlohmann::json& option, const std::string& where) {
  check_params_option(option, where);
  const bool all = option.is_string() && option.get<std::string>() == "all";
  const bool only_trainable = option.is_string() && option.get<std::string>() == "trainable";
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
