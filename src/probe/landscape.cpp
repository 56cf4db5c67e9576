#include "probe/landscape.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "io/state_dict.h"
#include "probe/registry.h"
#include "probe/selection.h"
#include "train/guards.h"
#include "train/loss.h"

namespace normlab::probe {
namespace {

std::vector<torch::Tensor> filter_normalized_direction(const std::vector<torch::Tensor>& tensors,
                                                       torch::Generator& gen, bool ignore_biasbn) {
  std::vector<torch::Tensor> dir;
  dir.reserve(tensors.size());
  for (const auto& p : tensors) {
    // Drawn for every tensor, so that a tensor's direction does not depend on which others
    // are 1-d.
    torch::Tensor d = torch::randn(p.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat))
                          .to(p.device(), p.scalar_type());
    if (p.dim() <= 1) {
      dir.push_back(ignore_biasbn ? torch::zeros_like(p) : p.detach().clone());
      continue;
    }
    torch::Tensor d_rows = d.flatten(1);  // (filters, rest)
    torch::Tensor p_rows = p.detach().flatten(1);
    torch::Tensor scale = p_rows.norm(2, {1}, true) / (d_rows.norm(2, {1}, true) + 1e-10);
    dir.push_back((d_rows * scale).view(p.sizes()));
  }
  return dir;
}

std::vector<double> evenly(double lo, double hi, int64_t n) {
  std::vector<double> out;
  for (int64_t i = 0; i < n; ++i) {
    out.push_back(lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(n - 1));
  }
  return out;
}

std::vector<torch::Tensor> clones(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> out;
  for (const auto& t : tensors) out.push_back(t.detach().clone());
  return out;
}

}  // namespace

std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> landscape_directions(
    const std::vector<torch::Tensor>& tensors, uint64_t seed, bool ignore_biasbn) {
  torch::Generator gen = make_generator(seed);
  auto d1 = filter_normalized_direction(tensors, gen, ignore_biasbn);
  auto d2 = filter_normalized_direction(tensors, gen, ignore_biasbn);
  return {std::move(d1), std::move(d2)};
}

double mean_loss(models::ClassifierImpl& model, const std::vector<data::Batch>& batches,
                 int64_t input_stage) {
  train::EvalModeGuard eval_mode(model);
  torch::NoGradGuard no_grad;
  torch::Tensor sum = torch::zeros({}, torch::kDouble);
  int64_t n = 0;
  for (const auto& batch : batches) {
    torch::Tensor loss = train::cross_entropy(model.forward_from(batch.x, input_stage), batch.y);
    sum += loss.to(torch::kCPU, torch::kDouble) * batch.y.size(0);
    n += batch.y.size(0);
  }
  return sum.item<double>() / static_cast<double>(n);
}

store::Surface loss_landscape(models::ClassifierImpl& model,
                              const std::vector<torch::Tensor>& tensors,
                              const std::vector<torch::Tensor>& d1,
                              const std::vector<torch::Tensor>& d2,
                              const std::vector<data::Batch>& batches, int64_t input_stage,
                              const LandscapeOptions& options) {
  require(options.resolution >= 2, "probe.landscape.resolution", "must be >= 2");
  require(options.span > 0, "probe.landscape.span", "must be > 0");
  require(!batches.empty(), "loss landscape", "the evaluation set is empty");
  train::WeightRestoreGuard restore(tensors);
  torch::NoGradGuard no_grad;
  const std::vector<torch::Tensor> origin = clones(tensors);

  store::Surface out;
  out.x_label = "alpha";
  out.y_label = "beta";
  out.z_label = "loss";
  out.x = out.y = evenly(-options.span, options.span, options.resolution);
  out.z.assign(out.y.size(), std::vector<double>(out.x.size(), 0.0));
  int64_t images = 0;
  for (const auto& b : batches) images += b.y.size(0);
  ProgressOptions po;
  po.label = options.progress_label;
  po.epochs = 0;
  po.steps_per_epoch = static_cast<int64_t>(out.x.size() * out.y.size());
  po.unit = "point";
  po.enabled = !options.progress_label.empty();
  Progress progress(po);
  int64_t done = 0;
  for (size_t yi = 0; yi < out.y.size(); ++yi) {
    for (size_t xi = 0; xi < out.x.size(); ++xi) {
      for (size_t k = 0; k < tensors.size(); ++k) {
        tensors[k].copy_(origin[k] + out.x[xi] * d1[k] + out.y[yi] * d2[k]);
      }
      out.z[yi][xi] = mean_loss(model, batches, input_stage);
      progress.step(0, ++done, images);
    }
  }
  progress.finish("");
  return out;
}

store::Surface loss_landscape(models::ClassifierImpl& model,
                              const std::vector<torch::Tensor>& tensors,
                              const std::vector<data::Batch>& batches, int64_t input_stage,
                              const LandscapeOptions& options) {
  auto [d1, d2] = landscape_directions(tensors, options.seed, options.ignore_biasbn);
  return loss_landscape(model, tensors, d1, d2, batches, input_stage, options);
}

store::Surface interpolation_curve(models::ClassifierImpl& model,
                                   const std::vector<torch::Tensor>& tensors,
                                   const std::vector<torch::Tensor>& from,
                                   const std::vector<torch::Tensor>& to,
                                   const std::vector<data::Batch>& batches, int64_t input_stage,
                                   int64_t points, double lo, double hi) {
  require(points >= 2, "probe.interpolation.points", "must be >= 2");
  require(!batches.empty(), "interpolation", "the evaluation set is empty");
  require(from.size() == tensors.size() && to.size() == tensors.size(), "interpolation",
          "the two weight states do not have the tensors the model has");
  train::WeightRestoreGuard restore(tensors);
  torch::NoGradGuard no_grad;
  store::Surface out;
  out.x_label = "t";
  out.y_label = "";
  out.z_label = "loss";
  out.x = evenly(lo, hi, points);
  out.y = {0.0};
  out.z.assign(1, std::vector<double>(out.x.size(), 0.0));
  for (size_t xi = 0; xi < out.x.size(); ++xi) {
    for (size_t k = 0; k < tensors.size(); ++k) {
      // (1 - t) from + t to, as from + t (to - from): exact at t = 0.
      tensors[k].copy_(from[k] + out.x[xi] * (to[k] - from[k]));
    }
    out.z[0][xi] = mean_loss(model, batches, input_stage);
  }
  return out;
}

std::vector<NamedTensor> landscape_tensors(models::ClassifierImpl& model,
                                           const train::NamedParams& trainable,
                                           const nlohmann::json& params_option, bool states,
                                           const std::string& where) {
  Selection sel = select_params(model, trainable, params_option, where);
  std::vector<NamedTensor> out;
  for (const auto& item : sel.params) out.push_back({item.name, item.params.front()});
  if (states) {
    for (const auto& b : model.named_buffers()) {
      if (!b.value().is_floating_point()) continue;  // num_batches_tracked
      const std::string owner = layer_of(b.key());
      const bool selected = std::any_of(sel.layers.begin(), sel.layers.end(),
                                        [&](const ParamItem& l) { return l.name == owner; });
      if (selected) out.push_back({b.key(), b.value()});
    }
  }
  return out;
}

LandscapeBatches landscape_batches(const train::EpochContext& ctx,
                                   const std::vector<NamedTensor>& tensors,
                                   const std::string& split_option, int64_t max_batches,
                                   int64_t max_images, const std::string& where) {
  require(ctx.eval != nullptr, where, "a landscape needs evaluation batches");
  int64_t lowest = ctx.model->num_stages();
  for (const auto& t : tensors) lowest = std::min(lowest, ctx.model->stage_of(t.name));
  std::string split = split_option;
  if (!ctx.eval->has_split(split)) {
    require(split == "val" && ctx.eval->has_split("train"), where + ": key 'split'",
            "the run has no split '" + split + "'", "use \"train\", \"val\" or \"test\"");
    split = "train";  // no validation split: the (unaugmented) training images
  }
  LandscapeBatches out;
  out.stage = std::min(lowest, ctx.eval->input_stage());
  int64_t images = 0;
  ctx.eval->for_each(split, max_batches, out.stage, [&](const data::Batch& b) {
    data::Batch kept = b;
    const int64_t n = b.y.size(0);
    if (max_images > 0 && images + n > max_images) {
      kept.x = b.x.narrow(0, 0, max_images - images);
      kept.y = b.y.narrow(0, 0, max_images - images);
    }
    images += kept.y.size(0);
    out.batches.push_back(kept);
    return max_images <= 0 || images < max_images;
  });
  if (lowest > out.stage) {
    // Nothing in [out.stage, lowest) moves: run those stages once here rather than at every
    // grid point (S0's head-only landscape on features.13's cache: 121 x features.14-18).
    train::EvalModeGuard eval_mode(*ctx.model);
    torch::NoGradGuard no_grad;
    for (auto& b : out.batches) b.x = ctx.model->forward_between(b.x, out.stage, lowest);
    out.stage = lowest;
  }
  return out;
}

namespace {

std::vector<torch::Tensor> tensors_of(const std::vector<NamedTensor>& named) {
  std::vector<torch::Tensor> out;
  for (const auto& t : named) out.push_back(t.tensor);
  return out;
}

class LandscapeProbe : public train::Observer {
 public:
  LandscapeProbe(const Json& o, const ProbeSetup& s)
      : option_(o.at("params")),
        split_(o.at("split").get<std::string>()),
        batches_(o.at("batches").get<int64_t>()),
        images_(o.at("images").get<int64_t>()),
        states_(o.at("directions").get<std::string>() == "states"),
        epochs_(o.at("epochs").get<std::vector<int64_t>>()),
        save_(o.at("save_directions").get<bool>()),
        where_(s.run + ": probe.landscape"),
        dir_(s.dir) {
    if (s.progress) options_.progress_label = s.run + " landscape";
    options_.resolution = o.at("resolution").get<int64_t>();
    options_.span = o.at("span").get<double>();
    options_.ignore_biasbn = o.at("ignore").get<std::string>() == "biasbn";
    options_.seed = s.seed;
    // Validated now, before any training: a selection that matches nothing fails here.
    landscape_tensors(*s.model, *s.trainable, option_, states_, where_ + ": key 'params'");
  }
  void on_run_start(const train::EpochContext& ctx) override {
    if (wanted(0)) draw(ctx, "landscape/init", false);
  }
  void on_epoch_end(const train::EpochContext& ctx) override {
    if (wanted(ctx.epoch + 1)) draw(ctx, "landscape/epoch", false);
  }
  void on_run_end(const train::EpochContext& ctx) override { draw(ctx, "landscape", save_); }

 private:
  bool wanted(int64_t epoch) const {
    return std::find(epochs_.begin(), epochs_.end(), epoch) != epochs_.end();
  }
  void draw(const train::EpochContext& ctx, const std::string& name, bool save) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto named =
        landscape_tensors(*ctx.model, *ctx.trainable, option_, states_, where_ + ": key 'params'");
    const auto data = landscape_batches(ctx, named, split_, batches_, images_, where_);
    const auto tensors = tensors_of(named);
    auto [d1, d2] = landscape_directions(tensors, options_.seed, options_.ignore_biasbn);
    if (save) save_directions(named, d1, d2, data);
    ctx.recorder->surface(
        name, ctx.epoch,
        loss_landscape(*ctx.model, tensors, d1, d2, data.batches, data.stage, options_));
    ctx.recorder->epoch_value(
        "time/" + name + "_s", ctx.epoch,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  // For a reference implementation to evaluate the same grid (bench/landscape_bench.py): the
  // moved tensors at the centre, both directions, and what the batches were.
  void save_directions(const std::vector<NamedTensor>& named, const std::vector<torch::Tensor>& d1,
                       const std::vector<torch::Tensor>& d2, const LandscapeBatches& data) const {
    require(!dir_.empty(), where_ + ": key 'save_directions'", "the run has no directory");
    io::StateDict dict;
    for (size_t k = 0; k < named.size(); ++k) {
      dict.items.emplace_back("origin/" + named[k].name,
                              named[k].tensor.detach().to(torch::kCPU).contiguous());
      dict.items.emplace_back("d1/" + named[k].name, d1[k].to(torch::kCPU).contiguous());
      dict.items.emplace_back("d2/" + named[k].name, d2[k].to(torch::kCPU).contiguous());
    }
    int64_t images = 0;
    for (const auto& b : data.batches) images += b.y.size(0);
    dict.metadata["normlab.images"] = std::to_string(images);
    dict.metadata["normlab.resolution"] = std::to_string(options_.resolution);
    dict.metadata["normlab.span"] = std::to_string(options_.span);
    dict.metadata["normlab.split"] = split_;
    std::filesystem::create_directories(dir_);
    io::save_safetensors(dir_ + "/landscape-directions.safetensors", dict);
  }

  Json option_;
  std::string split_;
  int64_t batches_, images_;
  bool states_;
  std::vector<int64_t> epochs_;
  bool save_;
  std::string where_, dir_;
  LandscapeOptions options_;
};

}  // namespace

ProbeInfo landscape_probe() {
  ProbeInfo p;
  p.name = "landscape";
  p.summary =
      "2-D filter-normalised loss landscapes (Li et al. 2018), at the end and chosen epochs";
  p.defaults = {{"enabled", false},
                {"params", Json::array({"trainable"})},
                {"resolution", 11},
                {"span", 1.0},
                {"batches", 4},
                {"images", 0},
                {"split", "val"},
                {"ignore", "biasbn"},
                {"directions", "weights"},
                {"epochs", Json::array()},
                {"save_directions", false}};
  p.help = {
      {"params", "\"trainable\", \"all\" or a list of module-path patterns that move"},
      {"resolution", "grid points per axis (odd keeps the centre on the grid)"},
      {"span", "alpha, beta in [-span, span]"},
      {"batches", "evaluation batches per grid point (0 = all)"},
      {"images", "at most this many images (0 = what `batches` gives)"},
      {"split", "\"val\" (the training set when there is none), \"train\" or \"test\""},
      {"ignore", "\"biasbn\": 1-d tensors (biases, norm parameters) do not move; \"none\""},
      {"directions", "\"weights\" (parameters) or \"states\" (also BN running statistics)"},
      {"epochs", "also draw after these epochs (0 = the initial weights); always at the end"},
      {"save_directions", "write the directions to the run's landscape-directions.safetensors"}};
  p.check = [](const Json& o, const std::string& where) {
    const std::string at = where + ": key 'probe.landscape.";
    check_params_option(o.at("params"), at + "params'");
    require(o.at("resolution").get<int64_t>() >= 2, at + "resolution'", "must be >= 2");
    require(o.at("span").get<double>() > 0, at + "span'", "must be > 0");
    require(o.at("batches").get<int64_t>() >= 0, at + "batches'", "must be >= 0");
    require(o.at("images").get<int64_t>() >= 0, at + "images'", "must be >= 0");
    const auto split = o.at("split").get<std::string>();
    require(split == "val" || split == "train" || split == "test", at + "split'",
            "unknown split '" + split + "'", "use \"val\", \"train\" or \"test\"");
    const auto ignore = o.at("ignore").get<std::string>();
    require(ignore == "biasbn" || ignore == "none", at + "ignore'",
            "unknown value '" + ignore + "'", "use \"biasbn\" or \"none\"");
    const auto dirs = o.at("directions").get<std::string>();
    require(dirs == "weights" || dirs == "states", at + "directions'",
            "unknown value '" + dirs + "'", "use \"weights\" or \"states\"");
    for (const auto& e : o.at("epochs")) {
      require(
          e.is_number_integer() && e.get<int64_t>() >= 0, at + "epochs'",
          "every entry must be an epoch number >= 0 (0 = the initial weights), got " + e.dump());
    }
  };
  p.patterns = [](const Json& o) { return params_patterns(o.at("params")); };
  p.make = [](const Json& o, const ProbeSetup& s) -> std::unique_ptr<train::Observer> {
    return std::make_unique<LandscapeProbe>(o, s);
  };
  return p;
}

}  // namespace normlab::probe
