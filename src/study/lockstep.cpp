#include "study/lockstep.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "models/prefix.h"
#include "store/metric_names.h"
#include "study/feature_source.h"
#include "study/group_eval.h"
#include "study/group_setup.h"
#include "study/run_metrics.h"
#include "study/step_validation.h"
#include "study/weights.h"
#include "train/autocast.h"

namespace normlab::study {
namespace metric = store::metric;
using Clock = std::chrono::steady_clock;

namespace {

class Group {
 public:
  Group(const std::vector<GroupMember>& members, store::Store& db, const RunnerOptions& options,
        StudyResult& result, EngineTiming& timing)
      : db_(db), options_(options), result_(result), timing_(timing) {
    for (const auto& m : members) runs_.push_back(std::make_unique<RunState>(m, options.out_dir));
  }

  void run() {
    auto t0 = Clock::now();
    g_ = setup_group(runs_, db_, options_);
    // The cache's architecture key; the prefix fingerprint covers the weights' bytes.
    const std::string arch = prefix_key(runs_.front()->ref.plan->config).architecture().dump();
    sources_ = std::make_unique<FeatureSources>(lead(), arch, g_.prefix, g_.cut, g_.device,
                                                g_.splits, timing_, options_.progress);
    step_val_ =
        std::make_unique<StepValidation>(lead(), *sources_,
                                         g_.cut > 0 && any_phase_updates_frozen_bn(lead().phases) &&
                                             models::prefix_has_batch_norm(*g_.prefix, g_.cut));
    release_free_memory();  // the setup's peak (weights, recalibration, cache) is over
    log::info("lockstep group of ", runs_.size(), " run(s): frozen prefix of ", g_.cut,
              " stage(s) ", sources_->cached() ? "read from the feature cache" : "runs per batch");
    timing_.setup_seconds += seconds_since(t0);
    int64_t first = runs_.front()->start_epoch, last = 0;
    for (auto& r : runs_) {
      // Killed between its final checkpoint and its status update: everything is stored.
      if (r->ended_in_checkpoint()) complete(*r);
      first = std::min(first, r->start_epoch);
      last = std::max(last, r->o.train.epochs);
    }
    std::vector<RunState*> starting;
    for (auto& r : runs_) {
      if (!r->done && r->start_epoch == 0) starting.push_back(r.get());
    }
    each(starting, [&](RunState& r) { r.trainer->notify_run_start(sources_.get()); });
    for (int64_t epoch = first; epoch < last; ++epoch) {
      std::vector<RunState*> active;
      for (auto& r : runs_) {
        if (!r->done && r->start_epoch <= epoch && epoch < r->o.train.epochs) {
          active.push_back(r.get());
        }
      }
      if (active.empty()) continue;
      train_epoch(active, epoch);
      end_epoch(active, epoch);
    }
  }

 private:
  const RunOptions& lead() const { return runs_.front()->o; }

  // Runs `fn` for each run still going; a run whose fn throws is failed, the others go on.
  template <typename Fn>
  void each(const std::vector<RunState*>& runs, Fn fn) {
    for (RunState* r : runs) {
      if (r->done) continue;
      try {
        fn(*r);
      } catch (const std::exception& e) {
        fail(*r, e.what());
      }
    }
  }

  void fail(RunState& r, const std::string& message) {
    r.done = r.failed = true;
    db_.set_status(r.id(), store::RunStatus::kFailed, message);
    ++result_.failed;
    result_.failures.push_back(r.name() + ": " + message);
    log::error(r.name(), " failed: ", message);
  }

  void train_epoch(const std::vector<RunState*>& active, int64_t epoch) {
    auto t0 = Clock::now();
    each(active, [&](RunState& r) { r.sync_phase(epoch); });
    // The prefix is frozen: in "update" mode its BN layers still use batch statistics and
    // update their running estimates, as PyTorch does after model.train(). Every run of a
    // group has the same phases (they are part of the group key).
    g_.prefix->train(active.front()->current_phase().train.frozen_bn ==
                     train::FrozenBatchNorm::kUpdate);
    FeatureSource& source = sources_->train();
    source.start_epoch(epoch);
    const int64_t steps = source.batches_per_epoch();
    for (RunState* r : active) r->trainer->begin_epoch(epoch, steps);
    ProgressOptions po;
    po.label = active.size() == 1 ? active.front()->name()
                                  : std::to_string(active.size()) + " runs (" +
                                        active.front()->ref.plan->group + " ...)";
    po.epochs = lead().train.epochs;
    po.steps_per_epoch = steps;
    po.enabled = options_.progress;
    Progress progress(po);
    train::AutocastGuard autocast(g_.device, lead().precision);
    torch::Tensor h;
    train::Targets t;
    int64_t step = 0;
    while (source.next(h, nullptr, t)) {
      const auto steps = Clock::now();
      each(active, [&](RunState& r) {
        r.schedule->before_step(r.phase_step());
        r.trainer->train_step(h, t);
      });
      timing_.step_seconds += seconds_since(steps);
      timing_.train_samples += t.y.size(0) * static_cast<int64_t>(active.size());
      if (step_val_->enabled()) {
        const int64_t done = active.front()->trainer->global_step();
        if (step_val_->due(done)) {
          const auto evals = Clock::now();
          step_val_->record(active, done);
          timing_.eval_seconds += seconds_since(evals);
        }
      }
      progress.step(epoch, ++step, t.y.size(0));
    }
    each(active, [](RunState& r) { r.stats = r.trainer->end_epoch(); });
    timing_.train_seconds += seconds_since(t0);
  }

  std::vector<Evaluation> evaluate(const std::vector<RunState*>& who, const std::string& split) {
    auto t0 = Clock::now();
    auto out =
        evaluate_runs(who, *sources_->eval(split), *g_.prefix, split, g_.splits.train.num_classes,
                      g_.device, lead(), timing_, options_.progress);
    timing_.eval_seconds += seconds_since(t0);
    return out;
  }

  std::string val_split() const { return g_.splits.val.size() > 0 ? "val" : "train_eval"; }

  void record_val(RunState& r, const Evaluation& e, int64_t epoch) {
    record_eval(r.trainer->recorder(), e.reported, e.reported.split, epoch);
    if (lead().tta) record_eval(r.trainer->recorder(), e.plain, metric::kValNoTta, epoch);
    r.trainer->notify_evaluation(e.reported, epoch);
  }

  void end_epoch(const std::vector<RunState*>& all, int64_t epoch) {
    std::vector<RunState*> active;
    for (RunState* r : all) {
      if (!r->done) active.push_back(r);
    }
    if (active.empty()) return;
    // Every run's copy of the prefix takes the shared prefix's state (BN statistics).
    if (g_.cut > 0) {
      for (RunState* r : active) models::copy_prefix(*g_.prefix, *r->model, g_.cut, true);
    }
    each(active, [&](RunState& r) { r.trainer->notify_train_epoch_end(epoch, sources_.get()); });
    std::vector<Evaluation> vals = evaluate(active, val_split());
    std::vector<RunState*> finishing, restored;
    for (size_t i = 0; i < active.size(); ++i) {
      RunState& r = *active[i];
      r.val = vals[i].reported;
      // Early stopping and plateau schedules see the plain validation loss unless the study
      // asks for the TTA one (train.tta_monitor): TTA is an evaluation choice, not training's.
      const train::EvalResult& seen = r.o.tta_monitor ? vals[i].reported : vals[i].plain;
      auto& rec = r.trainer->recorder();
      rec.epoch_value(metric::kTrainLoss, epoch, r.stats.loss);
      rec.epoch_value(metric::kTrainAcc, epoch, r.stats.accuracy);
      rec.epoch_value(metric::kEpochSeconds, epoch, r.stats.seconds);
      rec.epoch_value(metric::kImagesPerSecond, epoch, r.stats.images_per_s);
      rec.epoch_value(metric::kLrFactor, epoch, r.schedule->factor());
      bool stop = false;
      if (r.stopper->enabled()) {
        const double value = monitored(r.o.early_stopping.monitor, r.stats, seen);
        rec.epoch_value(metric::kMonitored, epoch, value);
        auto d = r.stopper->update(epoch, value);
        if (d.improved) r.remember_best();
        stop = d.stop;
      }
      r.schedule->end_epoch(r.phase_epoch(epoch), monitored(r.o.schedule.monitor, r.stats, seen));
      r.epochs_done = epoch + 1;
      if (!stop && r.epochs_done < r.o.train.epochs) continue;
      finishing.push_back(&r);
      if (stop) {
        log::info(r.name(), ": early stopping after epoch ", epoch + 1, " (best ",
                  r.o.early_stopping.monitor, " at epoch ", r.stopper->best_epoch() + 1, ")");
        rec.epoch_value(metric::kStoppedEpoch, epoch, static_cast<double>(epoch));
      }
      if (r.o.early_stopping.restore_best && r.stopper->enabled() && !r.best_state.empty()) {
        r.restore_best();
        // The tail's best weights; the frozen prefix keeps the group's current state (its BN
        // statistics in update mode): that is what evaluation computes, and what is saved.
        if (g_.cut > 0) models::copy_prefix(*g_.prefix, *r.model, g_.cut, true);
        rec.epoch_value(metric::kBestEpoch, epoch, static_cast<double>(r.stopper->best_epoch()));
        restored.push_back(&r);
      }
    }
    // The final validation metrics of a run that restored its best weights come from those
    // weights, like its test metrics.
    if (!restored.empty()) {
      auto again = evaluate(restored, val_split());
      for (size_t i = 0; i < restored.size(); ++i) {
        auto it = std::find(active.begin(), active.end(), restored[i]);
        vals[static_cast<size_t>(it - active.begin())] = again[i];
        restored[i]->val = again[i].reported;
      }
    }
    for (size_t i = 0; i < active.size(); ++i) record_val(*active[i], vals[i], epoch);
    each(active, [&](RunState& r) {
      r.trainer->notify_epoch_end(epoch, sources_.get());
      if (options_.progress) {
        char summary[160];
        std::snprintf(summary, sizeof summary, "train_loss %.4f  %s_acc %.2f", r.stats.loss,
                      r.val.split.c_str(), r.val.accuracy);
        log::info(r.name(), " epoch ", epoch + 1, "/", r.o.train.epochs, ": ", summary);
      }
    });
    if (!finishing.empty()) finish(finishing, epoch);
    each(active, [&](RunState& r) {
      const auto t0 = Clock::now();
      db_.write_epoch(r.id(), epoch, r.trainer->recorder().flush());
      r.save_checkpoint(epoch);
      timing_.store_seconds += seconds_since(t0);
      if (std::find(finishing.begin(), finishing.end(), &r) != finishing.end()) complete(r);
    });
  }

  // Final evaluation for runs that end this epoch: test metrics, confusion matrices and the
  // run-end probes (landscape), recorded with the epoch.
  void finish(const std::vector<RunState*>& who, int64_t epoch) {
    const auto& labels = g_.splits.train.class_names;
    std::vector<Evaluation> tests;
    if (g_.splits.test.size() > 0) tests = evaluate(who, "test");
    for (size_t i = 0; i < who.size(); ++i) {
      each({who[i]}, [&](RunState& r) {
        auto& rec = r.trainer->recorder();
        rec.matrix("confusion/" + r.val.split, epoch, confusion(r.val, labels));
        if (!tests.empty()) {
          record_eval(rec, tests[i].reported, "test", epoch);
          rec.matrix("confusion/test", epoch, confusion(tests[i].reported, labels));
        }
        r.trainer->notify_run_end(epoch, sources_.get());
      });
    }
  }

  void complete(RunState& r) {
    save_final_weights(*r.model, r.paths.final_weights());
    db_.set_status(r.id(), store::RunStatus::kComplete, "", seconds_since(r.started));
    ++result_.completed;
    r.done = true;
  }

  store::Store& db_;
  const RunnerOptions& options_;
  StudyResult& result_;
  EngineTiming& timing_;
  std::vector<std::unique_ptr<RunState>> runs_;
  GroupModels g_;
  std::unique_ptr<FeatureSources> sources_;
  std::unique_ptr<StepValidation> step_val_;
};

}  // namespace

void run_group(const std::vector<GroupMember>& members, store::Store& db,
               const RunnerOptions& options, StudyResult& result, EngineTiming& timing) {
  if (members.empty()) return;
  for (const auto& m : members) db.set_status(m.record.id, store::RunStatus::kRunning);
  try {
    Group group(members, db, options, result, timing);
    group.run();
  } catch (const std::exception& e) {
    // A setup error (data, weights, cache) fails every run of the group that has not ended.
    for (const auto& m : members) {
      auto now = db.find_run(m.record.config_hash);
      if (!now || now->status != store::RunStatus::kRunning) continue;
      db.set_status(m.record.id, store::RunStatus::kFailed, e.what());
      ++result.failed;
      result.failures.push_back(m.plan->name + ": " + e.what());
      log::error(m.plan->name, " failed: ", e.what());
    }
  }
}

}  // namespace normlab::study
