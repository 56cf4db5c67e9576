// The "interpolation" probe: the loss along the line from a run's initial weights to its final
// ones (Goodfellow et al., ICLR 2015, section 3), drawn at the end of the run. The initial
// state is kept in the run's directory (interpolation-init.safetensors), so a run killed and
// resumed draws the same curve. With BatchNorm the running statistics are part of the state: the
// curve is drawn with them interpolated too ("interpolation") and with the final statistics kept
// ("interpolation/final_stats"), as chosen by `stats`. Tensors outside the selection keep their
// final values (a frozen trunk's BN statistics that moved in "update" mode, say): select "all"
// for the line between the two whole models.
#include <filesystem>
#include <map>

#include "core/error.h"
#include "io/state_dict.h"
#include "probe/landscape.h"
#include "probe/registry.h"
#include "probe/selection.h"

namespace normlab::probe {
namespace {

class InterpolationProbe : public train::Observer {
 public:
  InterpolationProbe(const Json& o, const ProbeSetup& s)
      : option_(o.at("params")),
        split_(o.at("split").get<std::string>()),
        stats_(o.at("stats").get<std::string>()),
        batches_(o.at("batches").get<int64_t>()),
        images_(o.at("images").get<int64_t>()),
        points_(o.at("points").get<int64_t>()),
        lo_(o.at("range")[0].get<double>()),
        hi_(o.at("range")[1].get<double>()),
        where_(s.run + ": probe.interpolation"),
        path_(s.dir.empty() ? "" : s.dir + "/interpolation-init.safetensors") {
    require(!s.dir.empty(), where_, "the run has no directory to keep its initial weights in");
    landscape_tensors(*s.model, *s.trainable, option_, true, where_ + ": key 'params'");
  }

  void on_run_start(const train::EpochContext& ctx) override {
    io::StateDict initial;
    for (const auto& t : tensors(ctx)) {
      initial.items.emplace_back(t.name, t.tensor.detach().to(torch::kCPU).contiguous());
    }
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
    io::save_safetensors(path_, initial);  // atomic
  }

  void on_run_end(const train::EpochContext& ctx) override {
    const auto named = tensors(ctx);
    require(std::filesystem::exists(path_), path_,
            "the run's initial weights are missing, so the interpolation cannot be drawn",
            "delete the run's directory to train it again from the start");
    const io::StateDict initial = io::load_state_dict(path_);
    std::vector<torch::Tensor> all, from, to, params, params_from, params_to;
    for (size_t k = 0; k < named.size(); ++k) {
      const torch::Tensor& t = named[k].tensor;
      const torch::Tensor* saved = initial.find(named[k].name);
      require(saved != nullptr, path_, "has no tensor '" + named[k].name + "'",
              "delete the run's directory to train it again from the start");
      const torch::Tensor start = saved->to(t.device(), t.scalar_type());
      require(start.sizes() == t.sizes(), path_,
              "tensor '" + named[k].name + "' has another shape than the model's");
      all.push_back(t);
      from.push_back(start);
      to.push_back(t.detach().clone());
      if (!buffer_[k]) {
        params.push_back(t);
        params_from.push_back(start);
        params_to.push_back(to.back());
      }
    }
    const auto data = landscape_batches(ctx, named, split_, batches_, images_, where_);
    if (stats_ != "final") {
      ctx.recorder->surface("interpolation", ctx.epoch,
                            interpolation_curve(*ctx.model, all, from, to, data.batches, data.stage,
                                                points_, lo_, hi_));
    }
    if (stats_ != "interpolate") {
      ctx.recorder->surface("interpolation/final_stats", ctx.epoch,
                            interpolation_curve(*ctx.model, params, params_from, params_to,
                                                data.batches, data.stage, points_, lo_, hi_));
    }
  }

 private:
  // The selected parameters and their modules' running statistics, in a fixed order.
  std::vector<NamedTensor> tensors(const train::EpochContext& ctx) {
    auto named =
        landscape_tensors(*ctx.model, *ctx.trainable, option_, true, where_ + ": key 'params'");
    buffer_.clear();
    std::map<std::string, bool> is_param;
    for (const auto& p : ctx.model->named_parameters()) is_param[p.key()] = true;
    for (const auto& t : named) buffer_.push_back(!is_param.count(t.name));
    return named;
  }

  Json option_;
  std::string split_, stats_;
  int64_t batches_, images_, points_;
  double lo_, hi_;
  std::string where_, path_;
  std::vector<bool> buffer_;
};

}  // namespace

ProbeInfo interpolation_probe() {
  ProbeInfo p;
  p.name = "interpolation";
  p.summary = "1-D loss from the initial to the final weights (Goodfellow et al. 2015)";
  p.defaults = {{"enabled", false}, {"params", Json::array({"trainable"})},
                {"points", 25},     {"range", Json::array({-0.5, 1.5})},
                {"stats", "both"},  {"batches", 4},
                {"images", 0},      {"split", "val"}};
  p.help = {{"params", "\"trainable\", \"all\" or a list of module-path patterns that move"},
            {"points", "points along the line"},
            {"range", "[lo, hi]: t from lo to hi; 0 is the initial state, 1 the final one"},
            {"stats",
             "BN running statistics: \"interpolate\" them, keep the \"final\" ones, "
             "or \"both\" (two curves)"},
            {"batches", "evaluation batches per point (0 = all)"},
            {"images", "at most this many images (0 = what `batches` gives)"},
            {"split", "\"val\" (the training set when there is none), \"train\" or \"test\""}};
  p.check = [](const Json& o, const std::string& where) {
    const std::string at = where + ": key 'probe.interpolation.";
    check_params_option(o.at("params"), at + "params'");
    require(o.at("points").get<int64_t>() >= 2, at + "points'", "must be >= 2");
    const Json& r = o.at("range");
    require(r.size() == 2 && r[0].is_number() && r[1].is_number() &&
                r[0].get<double>() < r[1].get<double>(),
            at + "range'", "must be [lo, hi] with lo < hi, got " + r.dump());
    const auto stats = o.at("stats").get<std::string>();
    require(stats == "both" || stats == "interpolate" || stats == "final", at + "stats'",
            "unknown value '" + stats + "'", "use \"both\", \"interpolate\" or \"final\"");
    require(o.at("batches").get<int64_t>() >= 0, at + "batches'", "must be >= 0");
    require(o.at("images").get<int64_t>() >= 0, at + "images'", "must be >= 0");
    const auto split = o.at("split").get<std::string>();
    require(split == "val" || split == "train" || split == "test", at + "split'",
            "unknown split '" + split + "'", "use \"val\", \"train\" or \"test\"");
  };
  p.patterns = [](const Json& o) { return params_patterns(o.at("params")); };
  p.make = [](const Json& o, const ProbeSetup& s) -> std::unique_ptr<train::Observer> {
    return std::make_unique<InterpolationProbe>(o, s);
  };
  return p;
}

}  // namespace normlab::probe
