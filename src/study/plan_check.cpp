#include "study/plan_check.h"

#include <map>
#include <memory>
#include <set>

#include "core/error.h"
#include "core/path_pattern.h"
#include "models/model.h"
#include "probe/registry.h"
#include "study/run_options.h"

namespace normlab::study {
namespace {

// The model options a run will build, with the data-dependent sizes guessed from the config:
// module paths do not depend on them.
models::ModelOptions model_options(const RunOptions& o) {
  models::ModelOptions mo = o.model;
  const auto& src = o.data.split.train_source;
  const bool cifar = src.name == "cifar10" || src.name == "cifar100";
  const bool folder = src.name == "folder";
  mo.in_channels = src.name == "synthetic" ? src.synthetic_channels : cifar || folder ? 3 : 1;
  const int64_t native = src.name == "synthetic" ? src.synthetic_hw
                         : cifar                 ? 32
                         : folder                ? src.folder_size
                                                 : 28;
  mo.input_hw = o.data.resize > 0 ? o.data.resize : native;
  mo.num_classes = o.data.split.classes.empty()
                       ? (src.name == "synthetic" ? src.synthetic_classes : 10)
                       : static_cast<int64_t>(o.data.split.classes.size());
  return mo;
}

struct Names {
  std::vector<std::string> params;
  std::string top;  // top-level modules, for hints
  std::shared_ptr<torch::nn::Module> model;
};

void check(const Names& names, const std::string& pattern, const std::string& where,
           const std::string& key) {
  for (const auto& p : names.params) {
    if (path_matches(pattern, p)) return;
  }
  throw Error(where + ": key '" + key + "'",
              "pattern '" + pattern + "' matches no parameter of the model",
              "module paths start with one of: " + names.top +
                  " (`*` matches within a component, e.g. \"layer*.0\")");
}

}  // namespace

void check_plan(const Plan& plan, const std::string& where) {
  std::vector<const RunPlan*> runs;
  for (const auto& p : plan.pretrains) runs.push_back(&p);
  for (const auto& r : plan.runs) runs.push_back(&r);
  std::map<std::string, Names> built;  // model config -> names
  for (const RunPlan* r : runs) {
    const std::string run_where = where + " (run " + r->name + ")";
    RunOptions o = run_options(r->config, run_where);
    Json model_key = r->config.at("model");
    model_key.erase("weights");
    model_key["data"] = r->config.at("data");
    auto it = built.find(model_key.dump());
    if (it == built.end()) {
      Names names;
      try {
        models::Classifier model = models::build_model(model_options(o));  // norm overrides too
        names.model = model.ptr();
        for (const auto& p : model->named_parameters()) names.params.push_back(p.key());
        for (const auto& c : model->named_children()) {
          names.top += (names.top.empty() ? "" : ", ") + c.key();
        }
      } catch (const Error& e) {
        throw Error(run_where + ": " + e.subject(), e.problem(), e.hint());
      }
      it = built.emplace(model_key.dump(), std::move(names)).first;
    }
    const Names& names = it->second;
    for (const auto& [info, options] : o.probe.enabled) {
      if (info->check_model) info->check_model(options, *names.model, run_where);
    }
    for (size_t i = 0; i < o.phases.size(); ++i) {
      // Without phases, the one phase is the train table itself.
      const std::string at = o.phases.size() > 1 ? "phases[" + std::to_string(i) + "]." : "train.";
      for (const auto& p : o.phases[i].train.trainable)
        check(names, p, run_where, at + "trainable");
      for (const auto& g : o.phases[i].train.param_groups) {
        check(names, g.pattern, run_where, at + "param_groups");
      }
    }
    for (const auto& [info, options] : o.probe.enabled) {
      for (const auto& p : info->patterns(options)) {
        check(names, p, run_where, "probe." + info->name + ".params");
      }
    }
  }
}

}  // namespace normlab::study
