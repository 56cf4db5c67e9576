#include "study/prefix_key.h"

namespace normlab::study {
namespace {

void erase_dotted(Json& node, const std::string& dotted) {
  const auto dot = dotted.find('.');
  if (dot == std::string::npos) {
    node.erase(dotted);
    return;
  }
  auto it = node.find(dotted.substr(0, dot));
  if (it != node.end() && it->is_object()) erase_dotted(*it, dotted.substr(dot + 1));
}

// A run whose whole model trains (train.trainable = [], so cut_point is 0) and whose backbone
// is not recalibrated from a shared copy has no frozen prefix: its model settings cannot
// change anything the group shares (the batches), so runs that differ only in their models,
// such as S4's BatchNorm strategies, train in lockstep on the same batches.
bool no_frozen_prefix(const Json& config) {
  auto train = config.find("train");
  auto model = config.find("model");
  if (train == config.end() || model == config.end()) return false;
  auto trainable = train->find("trainable");
  auto recalibrate = model->find("recalibrate_bn");
  return trainable != train->end() && trainable->is_array() && trainable->empty() &&
         (recalibrate == model->end() || !recalibrate->get<bool>());
}

}  // namespace

const std::vector<std::string>& tail_only_keys() {
  // Settings read only by a run's trainer, its probes or its own evaluation bookkeeping.
  static const std::vector<std::string> keys = {
      "model.head",
      "train.epochs",
      "train.optimizer",
      "train.param_groups",
      "train.clip_norm",
      "train.clip_value",
      "train.label_smoothing",
      "train.schedule",
      "train.early_stopping",
      "train.tta_monitor",
      "probe",
  };
  return keys;
}

PrefixKey prefix_key(const Json& config) {
  PrefixKey key{config};
  if (!key.value.contains("role")) key.value["role"] = "run";
  for (const auto& k : tail_only_keys()) erase_dotted(key.value, k);
  if (no_frozen_prefix(config)) {
    key.value["model"] = Json::object();
    erase_dotted(key.value, "train.frozen_bn");
  }
  return key;
}

Json PrefixKey::architecture() const {
  Json model = value.at("model");
  model.erase("weights");
  return model;
}

}  // namespace normlab::study
