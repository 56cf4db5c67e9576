#include "study/run_state.h"

#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "probe/registry.h"
#include "train/dmbn_adopter.h"

namespace normlab::study {
namespace fs = std::filesystem;
namespace {

std::string model_state_bytes(torch::nn::Module& model) {
  torch::serialize::OutputArchive archive;
  model.save(archive);
  std::ostringstream os;
  archive.save_to(os);
  return os.str();
}

void load_model_state(torch::nn::Module& model, const std::string& bytes,
                      const std::string& source) {
  torch::serialize::InputArchive archive;
  try {
    std::istringstream is(bytes);
    archive.load_from(is);
    model.load(archive);
  } catch (const c10::Error& e) {
    throw Error(source,
                "not a readable weights archive (" + std::string(e.what_without_backtrace()) + ")",
                "delete it; the run restarts from its last checkpoint without a best-weights copy");
  }
}

}  // namespace

RunState::RunState(GroupMember r, const std::string& out_dir)
    : ref(r),
      o(run_options(r.plan->config, r.plan->name)),
      paths(RunPaths::of(out_dir, r.record.config_hash)) {}

void RunState::make_trainer(int64_t cut, torch::Device device, int64_t train_size, bool resume,
                            store::Store& db) {
  // A checkpoint holds the optimizer of the phase that wrote it: the phase of its last epoch.
  const int64_t done = resume ? train::Trainer::checkpoint_epochs(paths.checkpoint()) : 0;
  phase = phase_of(o.phases, std::max<int64_t>(done - 1, 0));
  train::TrainOptions to = current_phase().train;
  to.label = name();
  to.progress = false;  // the group prints one progress line
  to.input_stage = cut;
  trainer = std::make_unique<train::Trainer>(model, to, device);
  // DMBN adopts its momentum after each epoch's training, before anything evaluates.
  if (!train::dmbn_layers(*model).empty()) {
    dmbn = std::make_unique<train::DmbnAdopter>(*model, o.dmbn);
  }
  attach_observers();
  const int64_t batch = o.data.train_batch(train_size);
  steps_per_epoch = (train_size + batch - 1) / batch;
  make_schedule();
  stopper = std::make_unique<train::EarlyStopping>(o.early_stopping);
  if (resume) {
    nlohmann::json extra;
    start_epoch = trainer->load_checkpoint(paths.checkpoint(), &extra);
    if (extra.contains("phase")) {
      require(extra["phase"] == phase, paths.checkpoint(),
              "was written in phase " + extra["phase"].dump() + " but its epoch " +
                  std::to_string(start_epoch) + " lies in phase " + std::to_string(phase),
              "delete the file to restart this run from scratch");
    }
    if (extra.contains("schedule")) schedule->load_state(extra["schedule"]);
    if (extra.contains("early_stopping")) stopper->load_state(extra["early_stopping"]);
    if (fs::exists(paths.best_weights())) best_state = read_file_text(paths.best_weights());
    log::info("resuming ", name(), " after epoch ", start_epoch);
  }
  epochs_done = start_epoch;
  db.truncate_from_epoch(id(), start_epoch);
}

void RunState::attach_observers() {
  trainer->clear_observers();
  probes.clear();
  if (dmbn) trainer->add_observer(dmbn.get());
  probe::ProbeSetup setup{
      model.ptr().get(), &trainer->trainable(), o.train.clip, o.seed, name(), paths.dir, progress};
  for (const auto& [info, options] : o.probe.enabled) {
    probes.push_back(info->make(options, setup));
    trainer->add_observer(probes.back().get());
  }
}

void RunState::make_schedule() {
  schedule = std::make_unique<train::LrSchedule>(o.schedule, trainer->optimizer(), steps_per_epoch,
                                                 current_phase().epochs);
}

void RunState::sync_phase(int64_t epoch) {
  const size_t want = phase_of(o.phases, epoch);
  if (want == phase) return;
  phase = want;
  trainer->set_phase(current_phase().train, current_phase().keep_state);
  attach_observers();
  make_schedule();
  log::info(name(), ": phase ", phase + 1, "/", o.phases.size(), " from epoch ", epoch + 1);
}

int64_t RunState::phase_step() const {
  return trainer->global_step() - current_phase().first_epoch * steps_per_epoch;
}

void RunState::save_checkpoint(int64_t epoch) {
  nlohmann::json extra = {
      {"schedule", schedule->state()}, {"early_stopping", stopper->state()}, {"phase", phase}};
  trainer->save_checkpoint(paths.checkpoint(), epoch + 1, extra);
}

void RunState::remember_best() {
  best_state = model_state_bytes(*model);
  write_file_atomic(paths.best_weights(), best_state);
}

void RunState::restore_best() { load_model_state(*model, best_state, paths.best_weights()); }

bool RunState::ended_in_checkpoint() const {
  return start_epoch > 0 && (start_epoch >= o.train.epochs || stopper->stopped_epoch() >= 0);
}

}  // namespace normlab::study
