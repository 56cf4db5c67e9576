#include "study/phases.h"

#include <algorithm>

#include "core/error.h"
#include "models/prefix.h"

namespace normlab::study {

const std::vector<std::string>& phase_keys() {
  static const std::vector<std::string> keys = {"epochs",    "trainable", "param_groups",
                                                "optimizer", "frozen_bn", "keep_state"};
  return keys;
}

std::vector<Phase> parse_phases(
    const Json& config, const train::TrainOptions& run_train,
    const std::function<train::TrainOptions(const Json&)>& train_options,
    const std::string& where) {
  const Json& list = config.at("phases");
  if (list.empty()) return {Phase{0, run_train.epochs, run_train, false}};
  std::vector<Phase> out;
  int64_t first = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = where + ": key 'phases[" + std::to_string(i) + "]";
    const Json& entry = list[i];
    require(entry.is_object(), at + "'", "must be a table ([[run.phases]])");
    Json overlay = Json::object();
    int64_t epochs = 0;
    bool keep_state = false;
    for (const auto& item : entry.items()) {
      const auto& keys = phase_keys();
      if (std::find(keys.begin(), keys.end(), item.key()) == keys.end()) {
        std::string known;
        for (const auto& k : keys) known += (known.empty() ? "" : ", ") + k;
        throw Error(at + "." + item.key() + "'", "unknown key", "a phase may set: " + known);
      }
      if (item.key() == "epochs") {
        require(item.value().is_number_integer() && item.value().get<int64_t>() >= 1,
                at + ".epochs'", "must be an integer >= 1, got " + item.value().dump());
        epochs = item.value().get<int64_t>();
      } else if (item.key() == "keep_state") {
        require(item.value().is_boolean(), at + ".keep_state'",
                "must be true or false, got " + item.value().dump());
        keep_state = item.value().get<bool>();
      } else {
        overlay[item.key()] = item.value();
      }
    }
    require(epochs > 0, at + "'", "has no 'epochs'");
    Json phase_config = config;
    phase_config["phases"] = Json::array();
    merge_config(phase_config["train"], overlay, where + " phases[" + std::to_string(i) + "]",
                 default_run_config().at("train"));
    phase_config["train"]["epochs"] = epochs;
    Phase p;
    p.first_epoch = first;
    p.epochs = epochs;
    try {
      p.train = train_options(phase_config);
    } catch (const Error& e) {
      throw Error(at + "': " + e.subject(), e.problem(), e.hint());
    }
    p.train.epochs = run_train.epochs;
    p.keep_state = keep_state;
    out.push_back(std::move(p));
    first += epochs;
  }
  require(first == run_train.epochs, where + ": key 'train.epochs'",
          "is " + std::to_string(run_train.epochs) + " but the phases add up to " +
              std::to_string(first) + " epochs",
          "leave train.epochs out: with phases it is their sum");
  return out;
}

size_t phase_of(const std::vector<Phase>& phases, int64_t epoch) {
  for (size_t i = 0; i < phases.size(); ++i) {
    if (epoch < phases[i].first_epoch + phases[i].epochs) return i;
  }
  return phases.empty() ? 0 : phases.size() - 1;
}

int64_t phase_epochs(const Json& config) {
  int64_t sum = 0;
  auto it = config.find("phases");
  if (it == config.end() || !it->is_array()) return 0;
  for (const auto& p : *it) {
    if (p.is_object() && p.contains("epochs") && p["epochs"].is_number_integer()) {
      sum += p["epochs"].get<int64_t>();
    }
  }
  return sum;
}

int64_t run_cut(models::ClassifierImpl& model, const std::vector<Phase>& phases) {
  int64_t cut = model.num_stages();
  for (const auto& p : phases) cut = std::min(cut, models::cut_point(model, p.train.trainable));
  return cut;
}

bool any_phase_updates_frozen_bn(const std::vector<Phase>& phases) {
  return std::any_of(phases.begin(), phases.end(), [](const Phase& p) {
    return p.train.frozen_bn == train::FrozenBatchNorm::kUpdate;
  });
}

}  // namespace normlab::study
