#include "study/group_setup.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "io/state_dict.h"
#include "models/prefix.h"
#include "models/recalibrate.h"
#include "study/feature_cache.h"
#include "study/feature_source.h"
#include "study/weights.h"
#include "train/dmbn_adopter.h"

namespace normlab::study {
namespace fs = std::filesystem;

models::Classifier build_run_model(const RunOptions& o, const data::Splits& splits) {
  models::ModelOptions mo = o.model;
  mo.in_channels = splits.train.images.size(1);
  mo.input_hw = o.data.resize > 0 ? o.data.resize : splits.train.images.size(2);
  mo.num_classes = splits.train.num_classes;
  apply_seed(o.seed);  // the same initial weights as the run trained alone
  return models::build_model(mo);
}

namespace {

models::Classifier build(const RunOptions& o, const data::Splits& splits, torch::Device device,
                         const std::string& out_dir) {
  models::Classifier model = build_run_model(o, splits);
  if (!o.weights.empty()) load_weights(*model, o.weights, o.weights_skip, out_dir);
  model->to(device);
  return model;
}

// BN-folded imports carry placeholder statistics; measure the real ones on unaugmented
// training batches before any BN layer runs in train mode. Only the loaded backbone is
// recalibrated: a new head has nothing to fix.
//
// The result depends only on the trunk's weights, the calibration images and their batching,
// so it is kept in the study directory (recalibrated/<key>.safetensors, the trunk's tensors)
// and reused by every group that would compute the same: S1's 20 configurations of a seed
// fall into 5 lockstep groups (batch sizes), which recalibrated 5 times.
void recalibrate(GroupModels& g, std::vector<std::unique_ptr<RunState>>& runs, bool progress,
                 const std::string& out_dir) {
  const RunOptions& o = runs.front()->o;
  const Json& config = runs.front()->ref.plan->config;
  const int64_t trunk = g.prefix->num_stages();  // every stage: the head is not copied
  const Json key_json = {{"data", config.at("data")},
                         {"eval_batch_size", config.at("train").at("eval_batch_size")},
                         {"batches", o.recalibrate_batches},
                         {"trunk", prefix_fingerprint(g.prefix, trunk)}};
  const std::string cache = out_dir + "/recalibrated/" +
                            sha256_hex(canonical_text(key_json)).substr(0, 32) + ".safetensors";
  auto share = [&] {
    for (auto& r : runs) {
      if (r->start_epoch == 0) models::copy_prefix(*g.prefix, *r->model, trunk, false);
    }
  };
  if (fs::exists(cache)) {
    const io::StateDict saved = io::load_state_dict(cache);
    torch::NoGradGuard no_grad;
    int64_t copied = 0;
    auto take = [&](const std::string& name, torch::Tensor& t) {
      if (g.prefix->stage_of(name) >= trunk) return;
      const torch::Tensor* s = saved.find(name);
      require(s != nullptr && s->sizes() == t.sizes(), cache,
              "does not hold the trunk's '" + name + "'", "delete it to recalibrate again");
      t.copy_(s->to(t.device(), t.scalar_type()));
      ++copied;
    };
    for (auto& p : g.prefix->named_parameters()) take(p.key(), p.value());
    for (auto& b : g.prefix->named_buffers()) take(b.key(), b.value());
    share();
    log::info("recalibrated BatchNorm statistics reused from ", cache, " (", copied, " tensors)");
    return;
  }
  const int64_t channels = g.splits.train.images.size(1);
  data::Batcher calib(g.splits.train,
                      batcher_options(o.data, channels, g.device, false, g.splits.train.size()),
                      o.seed);
  calib.start_epoch(0);
  data::Batch b;
  int64_t batches = 0;
  // The same images as whole evaluation batches, fed in chunks: statistics are merged
  // exactly (Chan et al.), and a 256-image batch at 224x224 would need ~10 GB at once.
  std::vector<torch::Tensor> chunks;
  ProgressOptions po;
  po.label = "recalibrating BatchNorm";
  po.epochs = 0;
  po.steps_per_epoch = std::min(o.recalibrate_batches, calib.batches_per_epoch());
  po.enabled = progress;
  Progress bar(po);
  auto report = models::recalibrate_batchnorm(*g.prefix, [&](torch::Tensor& x) {
    if (chunks.empty()) {
      if (batches > 0) bar.step(0, batches, b.x.size(0));
      if (batches++ >= o.recalibrate_batches || !calib.next(b)) return false;
      auto parts = b.x.split(models::kPrefixChunk * 4);
      chunks.assign(parts.rbegin(), parts.rend());
    }
    x = chunks.back();
    chunks.pop_back();
    return true;
  });
  bar.finish("");
  share();
  log::info("recalibrated ", report.layers, " BatchNorm layers on ", report.samples,
            " images (the backbone's statistics are used by every run of the group)");
  io::StateDict dict;
  for (const auto& p : g.prefix->named_parameters()) {
    if (g.prefix->stage_of(p.key()) < trunk) {
      dict.items.emplace_back(p.key(), p.value().detach().to(torch::kCPU).contiguous());
    }
  }
  for (const auto& b : g.prefix->named_buffers()) {
    if (g.prefix->stage_of(b.key()) < trunk) {
      dict.items.emplace_back(b.key(), b.value().detach().to(torch::kCPU).contiguous());
    }
  }
  fs::create_directories(fs::path(cache).parent_path());
  io::save_safetensors(cache, dict);
}

}  // namespace

GroupModels setup_group(std::vector<std::unique_ptr<RunState>>& runs, store::Store& db,
                        const RunnerOptions& options) {
  const RunOptions& o = runs.front()->o;
  GroupModels g;
  g.device = parse_device(o.device);
  g.splits = data::load_splits(o.data.split);
  g.prefix = build(o, g.splits, g.device, options.out_dir);
  g.cut = run_cut(*g.prefix, o.phases);
  std::vector<bool> resume;
  for (auto& r : runs) {
    fs::create_directories(r->paths.dir);
    r->model = build(r->o, g.splits, g.device, options.out_dir);
    require(run_cut(*r->model, r->o.phases) == g.cut, r->name(),
            "internal: members of a lockstep group differ in cut");
    for (const auto& [path, layer] : train::dmbn_layers(*r->model)) {
      require(r->model->stage_of(path + ".weight") >= g.cut,
              r->name() + ": DMBN layer '" + path + "'",
              "lies in the frozen prefix, where nothing trains and its momentum cannot adapt",
              "make it trainable (train.trainable) or use bn there");
    }
    const bool has_ckpt = db.epochs_done(r->id()) > 0 && fs::exists(r->paths.checkpoint());
    resume.push_back(has_ckpt);
    r->start_epoch = has_ckpt ? -1 : 0;
  }
  const bool any_fresh =
      std::any_of(runs.begin(), runs.end(), [](const auto& r) { return r->start_epoch == 0; });
  if (o.recalibrate_bn && any_fresh) recalibrate(g, runs, options.progress, options.out_dir);

  // NHWC speeds up the inference-only prefix (oneDNN: 1.5-1.8x on MobileNetV2 here), so the
  // prefix holder's weights are converted. The tails keep their weights as built and get
  // channels-last maps (study/feature_source.cpp): on an AMD EPYC their steps ran 1.3-1.5x
  // faster so (bench/README.md, "The tails"), although on an Intel machine an earlier session
  // measured a 1x1 conv's weight gradient 2.3x slower in NHWC; model.channels_last = false
  // turns both off.
  if (o.channels_last) models::to_channels_last(*g.prefix);
  for (size_t i = 0; i < runs.size(); ++i) {
    runs[i]->progress = options.progress;
    runs[i]->make_trainer(g.cut, g.device, g.splits.train.size(), resume[i], db);
  }
  // The prefix state (BN statistics updated in train mode) of the earliest run.
  RunState* earliest = nullptr;
  for (auto& r : runs) {
    if (earliest == nullptr || r->start_epoch < earliest->start_epoch) earliest = r.get();
  }
  if (g.cut > 0 && earliest != nullptr) {
    models::copy_prefix(*earliest->model, *g.prefix, g.cut, false);
  }
  return g;
}

}  // namespace normlab::study
