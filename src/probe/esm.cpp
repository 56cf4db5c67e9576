// esm: BatchNorm estimation shift (Huang et al., CVPR 2022; seed 004, ../shared/STUDIES.md
// S4). Every `every` epochs, after the epoch's evaluation, one forward pass over the chosen
// split measures the population statistics of every running-statistics norm's input, then
// records per layer "esm/mu/<layer>" = ||mu_running - mu_pop||_2 and "esm/sigma/<layer>" =
// ||sqrt(var_running) - sqrt(var_pop)||_2, and their sums over layers "esm/mu_sum",
// "esm/sigma_sum". Accumulated on the device: one host transfer when the epoch is flushed.
#include <memory>

#include "core/error.h"
#include "models/population_stats.h"
#include "nn/norm.h"
#include "probe/registry.h"
#include "train/estimation_shift.h"

namespace normlab::probe {
namespace {

class Esm : public train::Observer {
 public:
  explicit Esm(const Json& o)
      : split_(o.at("split").get<std::string>()),
        every_(o.at("every").get<int64_t>()),
        upstream_train_(o.at("upstream").get<std::string>() == "train") {}

  void on_epoch_end(const train::EpochContext& ctx) override {
    if ((ctx.epoch + 1) % every_ != 0) return;
    const auto pops = train::split_population(ctx, split_, {upstream_train_},
                                              "probe.esm (split '" + split_ + "')");
    std::vector<std::string> names;
    std::vector<torch::Tensor> mu, sigma;
    for (const auto& p : pops) {
      if (p.count == 0) continue;  // not on the forward path
      const auto running = models::running_estimate(*p.module, p.path);
      const train::Shift s = train::estimation_shift(running.mean, running.var, p);
      names.push_back(p.path);
      mu.push_back(s.mu);
      sigma.push_back(s.sigma);
    }
    if (names.empty()) return;
    std::vector<std::string> keys;
    for (const auto& n : names) keys.push_back("esm/mu/" + n);
    for (const auto& n : names) keys.push_back("esm/sigma/" + n);
    keys.push_back("esm/mu_sum");
    keys.push_back("esm/sigma_sum");
    const torch::Tensor m = torch::stack(mu), s = torch::stack(sigma);
    ctx.recorder->epoch_values(keys, ctx.epoch,
                               torch::cat({m, s, m.sum().reshape({1}), s.sum().reshape({1})}));
  }

 private:
  std::string split_;
  int64_t every_;
  bool upstream_train_;
};

bool has_running_statistics(torch::nn::Module& model) {
  for (const auto& m : model.modules()) {
    auto t = nn::norm_traits(*m);
    if (t && t->running_statistics) return true;
  }
  return false;
}

}  // namespace

ProbeInfo esm_probe() {
  ProbeInfo p;
  p.name = "esm";
  p.summary = "BatchNorm estimation shift (ESM_mu, ESM_sigma) per layer, every N epochs";
  p.defaults = {{"enabled", false}, {"split", "val"}, {"every", 1}, {"upstream", "eval"}};
  p.help = {{"split", "evaluation split measured: \"val\", \"train_eval\" or \"test\""},
            {"every", "measure after every N epochs"},
            {"upstream",
             "\"eval\": the network as at inference; \"train\": batch statistics in "
             "the layers upstream"}};
  p.check = [](const Json& o, const std::string& where) {
    const auto split = o.at("split").get<std::string>();
    require(split == "val" || split == "train_eval" || split == "test",
            where + ": key 'probe.esm.split'", "unknown split '" + split + "'",
            "use one of: val, train_eval, test");
    require(o.at("every").get<int64_t>() >= 1, where + ": key 'probe.esm.every'", "must be >= 1");
    const auto up = o.at("upstream").get<std::string>();
    require(up == "eval" || up == "train", where + ": key 'probe.esm.upstream'",
            "unknown value '" + up + "'", "use one of: eval, train");
  };
  p.check_model = [](const Json&, torch::nn::Module& model, const std::string& where) {
    require(has_running_statistics(model), where + ": key 'probe.esm.enabled'",
            "the model has no BatchNorm layer (no running estimates to measure)",
            "turn the probe off for models without BatchNorm");
  };
  p.patterns = [](const Json&) { return std::vector<std::string>{}; };
  p.make = [](const Json& o, const ProbeSetup&) -> std::unique_ptr<train::Observer> {
    return std::make_unique<Esm>(o);
  };
  return p;
}

}  // namespace normlab::probe
