#include "study/runner.h"

#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/runtime.h"
#include "data/registry.h"
#include "models/recalibrate.h"
#include "probe/grad_norms.h"
#include "probe/landscape.h"
#include "store/store.h"
#include "study/run_options.h"
#include "study/weights.h"
#include "train/params.h"

namespace normlab::study {
namespace fs = std::filesystem;
namespace {

struct RunData {
  data::Dataset train;
  data::Dataset val;
  data::Dataset test;  // size 0 when data.test = false
};

data::Dataset limit(const data::Dataset& ds, int64_t n, uint64_t seed) {
  if (n <= 0 || n >= ds.size()) return ds;
  // A stratified subset keeps the class balance of the full set.
  double frac = 1.0 - static_cast<double>(n) / static_cast<double>(ds.size());
  auto split = data::stratified_split(ds.labels, ds.num_classes, frac, seed);
  return data::subset(ds, split.train);
}

RunData load_run_data(const DataSlice& d) {
  RunData out;
  data::Dataset full = data::load_dataset(d.train_source);
  if (!d.classes.empty()) full = data::select_classes(full, d.classes);
  full = limit(full, d.train_limit + d.val_limit, d.split_seed);
  if (d.val_fraction > 0) {
    auto split =
        data::stratified_split(full.labels, full.num_classes, d.val_fraction, d.split_seed);
    out.train = data::subset(full, split.train);
    out.val = data::subset(full, split.val);
  } else {
    out.train = full;
  }
  out.train = limit(out.train, d.train_limit, d.split_seed + 1);
  out.val = limit(out.val, d.val_limit, d.split_seed + 2);
  if (d.test) {
    data::Dataset test = data::load_dataset(d.test_source);
    if (!d.classes.empty()) test = data::select_classes(test, d.classes);
    out.test = limit(test, d.test_limit, d.split_seed + 3);
  }
  require(out.train.size() > 0, "data",
          "the training set is empty after class selection and limits");
  return out;
}

data::BatcherOptions batcher_options(const DataSlice& d, int64_t channels, torch::Device device,
                                     bool training) {
  data::BatcherOptions b;
  b.batch_size = training ? d.batch_size : d.eval_batch_size;
  b.shuffle = training;
  b.drop_last = false;
  if (training) b.augment = d.augment;
  b.resize = d.resize;
  auto preset = data::normalize_preset(d.normalize, channels);
  b.mean = preset.mean;
  b.stddev = preset.stddev;
  b.device = device;
  return b;
}

void record_eval(train::Recorder& rec, const train::EvalResult& r, int64_t epoch) {
  rec.epoch_value(r.split + "/loss", epoch, r.loss);
  rec.epoch_value(r.split + "/acc", epoch, r.accuracy);
  rec.epoch_value(r.split + "/macro_sensitivity", epoch, r.macro_sensitivity);
  rec.epoch_value(r.split + "/macro_specificity", epoch, r.macro_specificity);
  rec.epoch_value(r.split + "/macro_f1", epoch, r.macro_f1);
}

nlohmann::json confusion_json(const train::EvalResult& r, const std::vector<std::string>& labels) {
  nlohmann::json m = nlohmann::json::array();
  auto c = r.confusion.to(torch::kLong).contiguous();
  for (int64_t i = 0; i < c.size(0); ++i) {
    nlohmann::json row = nlohmann::json::array();
    for (int64_t j = 0; j < c.size(1); ++j) row.push_back(c[i][j].item<int64_t>());
    m.push_back(row);
  }
  return {{"split", r.split}, {"labels", labels}, {"matrix", m}};
}

std::vector<store::ScalarPoint> to_points(const std::vector<train::ScalarRow>& rows) {
  std::vector<store::ScalarPoint> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back({r.name, r.step, r.value});
  return out;
}

// Trains one run to completion (or resumes it), writing every epoch to the store.
void execute_run(const RunPlan& run, const store::RunRecord& record, store::Store& db,
                 const RunnerOptions& options) {
  RunOptions o = run_options(run.config, run.name);
  torch::Device device = parse_device(o.device);
  apply_seed(o.seed);
  RunData rd = load_run_data(o.data);

  models::ModelOptions mo = o.model;
  mo.in_channels = rd.train.images.size(1);
  mo.input_hw = o.data.resize > 0 ? o.data.resize : rd.train.images.size(2);
  mo.num_classes = rd.train.num_classes;
  models::Classifier model = models::build_model(mo);
  if (!o.weights.empty()) load_weights(*model, o.weights, o.weights_skip, options.out_dir);
  const int64_t channels = rd.train.images.size(1);
  model->to(device);
  std::string dir = run_dir(options.out_dir, record.config_hash);
  std::string ckpt = dir + "/checkpoint.pt";
  const bool resuming = db.epochs_done(record.id) > 0 && fs::exists(ckpt);
  if (o.recalibrate_bn && !resuming) {  // a checkpoint already holds recalibrated statistics
    // BN-folded imports (e.g. TFLite) carry placeholder statistics; measure the real ones on
    // unaugmented training batches before any BN layer runs in train mode.
    data::Batcher calib(rd.train, batcher_options(o.data, channels, device, false), o.seed);
    calib.start_epoch(0);
    data::Batch b;
    int64_t batches = 0;
    auto report = models::recalibrate_batchnorm(*model, [&](torch::Tensor& x) {
      if (batches++ >= o.recalibrate_batches || !calib.next(b)) return false;
      x = b.x;
      return true;
    });
    log::info(run.name, ": recalibrated ", report.layers, " BatchNorm layers on ", report.samples,
              " images");
  }

  o.train.label = run.name;
  o.train.progress = options.progress;
  train::Trainer trainer(model, o.train, device);
  probe::GradNormProbe grad_probe;
  if (o.probe.grad_norms) trainer.add_observer(&grad_probe);

  data::Batcher train_batches(rd.train, batcher_options(o.data, channels, device, true), o.seed);
  data::Batcher val_batches(rd.val.size() > 0 ? rd.val : rd.train,
                            batcher_options(o.data, channels, device, false), o.seed);
  fs::create_directories(dir);

  int64_t start_epoch = 0;
  if (resuming) {
    start_epoch = trainer.load_checkpoint(ckpt);
    log::info("resuming ", run.name, " after epoch ", start_epoch);
  }
  db.truncate_from_epoch(record.id, start_epoch);

  for (int64_t epoch = start_epoch; epoch < o.train.epochs; ++epoch) {
    train::EpochStats stats = trainer.train_epoch(train_batches, epoch);
    auto& rec = trainer.recorder();
    rec.epoch_value("train/loss", epoch, stats.loss);
    rec.epoch_value("train/acc", epoch, stats.accuracy);
    rec.epoch_value("time/epoch_s", epoch, stats.seconds);
    rec.epoch_value("train/images_per_s", epoch, stats.images_per_s);
    train::EvalResult val =
        trainer.evaluate(val_batches, rd.val.size() > 0 ? "val" : "train_eval", epoch);
    record_eval(rec, val, epoch);
    bool last = epoch + 1 == o.train.epochs;
    if (last) {
      db.put_artifact(record.id, "confusion", confusion_json(val, rd.train.class_names));
      if (rd.test.size() > 0) {
        data::Batcher test_batches(rd.test, batcher_options(o.data, channels, device, false),
                                   o.seed);
        train::EvalResult test = trainer.evaluate(test_batches, "test", epoch);
        record_eval(rec, test, epoch);
        db.put_artifact(record.id, "confusion_test", confusion_json(test, rd.train.class_names));
      }
      if (o.probe.landscape) {
        std::vector<torch::Tensor> params;
        for (const auto& item : trainer.model()->named_parameters()) {
          bool pick = o.probe.landscape_params == "trainable"
                          ? item.value().requires_grad()
                          : train::pattern_matches(o.probe.landscape_params, item.key());
          if (pick) params.push_back(item.value());
        }
        require(!params.empty(), run.name + ": key 'probe.landscape.params'",
                "selects no parameter");
        auto land =
            probe::loss_landscape(trainer.model(), params, val_batches, o.probe.landscape_options);
        db.put_artifact(record.id, "landscape", land.to_json());
      }
    }
    auto flushed = rec.flush();
    db.write_epoch(record.id, epoch, to_points(flushed.step), to_points(flushed.epoch));
    trainer.save_checkpoint(ckpt, epoch + 1);
    if (options.progress) {
      char summary[160];
      std::snprintf(summary, sizeof summary, "train_loss %.4f  %s_acc %.2f", stats.loss,
                    val.split.c_str(), val.accuracy);
      log::info(run.name, " epoch ", epoch + 1, "/", o.train.epochs, ": ", summary);
    }
  }
  save_final_weights(*trainer.model(), dir + "/model.safetensors");
}

}  // namespace

std::string run_dir(const std::string& out_dir, const std::string& config_hash) {
  return out_dir + "/runs/" + config_hash.substr(0, 16);
}

StudyResult run_study(const Plan& plan, const RunnerOptions& options) {
  auto t0 = std::chrono::steady_clock::now();
  fs::create_directories(options.out_dir);
  auto db = store::Store::open(options.out_dir + "/study.db");
  int threads = apply_threads(options.threads);
  db->set_meta("study_name", plan.study_name);
  if (!options.spec_text.empty()) db->set_meta("spec", options.spec_text);
  db->set_meta("threads", std::to_string(threads));
  db->set_meta("torch_version", TORCH_VERSION);
  if (plan.pretrain) {
    db->set_meta("auxiliary_groups", nlohmann::json::array({plan.pretrain->group}).dump());
  }

  std::vector<const RunPlan*> all;
  if (plan.pretrain) all.push_back(&*plan.pretrain);
  for (const auto& r : plan.runs) all.push_back(&r);

  StudyResult result;
  for (const RunPlan* run : all) {
    std::string text = canonical_text(run->config);
    auto record =
        db->upsert_run(run->name, run->group, text, run->config.at("seed").get<int64_t>());
    if (record.status == store::RunStatus::kComplete) {
      ++result.skipped;
      continue;
    }
    db->set_status(record.id, store::RunStatus::kRunning);
    auto r0 = std::chrono::steady_clock::now();
    try {
      execute_run(*run, record, *db, options);
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - r0).count();
      db->set_status(record.id, store::RunStatus::kComplete, "", secs);
      ++result.completed;
    } catch (const std::exception& e) {
      db->set_status(record.id, store::RunStatus::kFailed, e.what());
      ++result.failed;
      result.failures.push_back(run->name + ": " + e.what());
      log::error(run->name, " failed: ", e.what());
      // Later runs cannot start from weights that were never trained.
      if (run->role == "pretrain") break;
    }
  }
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace normlab::study
