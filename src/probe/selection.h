// Which parameters a probe looks at, and how they group into layers. The option `params` is
// "trainable" (the run's trainable parameters, the default), "all", a module-path pattern or
// a list of them (core/path_pattern.h, e.g. ["head", "features.18"]). A layer is a module
// owning parameters directly: "head.0" for "head.0.weight" and "head.0.bias".
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/model.h"
#include "train/observer.h"

namespace normlab::probe {

struct ParamItem {
  std::string name;                   // parameter or layer (module) path
  std::vector<torch::Tensor> params;  // one tensor for a parameter; the module's for a layer
};

struct Selection {
  std::vector<ParamItem> params;  // one item per parameter tensor, in model order
  std::vector<ParamItem> layers;  // one item per module, in model order
};

// Throws Error naming `where` when the option is neither a string nor a list of strings.
void check_params_option(const nlohmann::json& option, const std::string& where);
// The patterns of the option (none for "trainable" / "all"): checked at plan time.
std::vector<std::string> params_patterns(const nlohmann::json& option);

// Selects from `model`; `trainable` decides "trainable". Throws Error naming `where` when
// the selection is empty.
Selection select_params(models::ClassifierImpl& model, const train::NamedParams& trainable,
                        const nlohmann::json& option, const std::string& where);

// The module path owning a parameter ("head.0.weight" -> "head.0").
std::string layer_of(const std::string& param_name);

}  // namespace normlab::probe
