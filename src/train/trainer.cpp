#include "train/trainer.h"

#include <chrono>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/progress.h"
#include "nn/norm.h"
#include "train/guards.h"
#include "train/loss.h"
#include "train/metrics.h"

namespace normlab::train {

Trainer::Trainer(models::Classifier model, TrainOptions options, torch::Device device)
    : model_(std::move(model)), options_(std::move(options)), device_(device) {
  model_->to(device_);
  plan_ =
      plan_parameters(*model_, options_.trainable, options_.param_groups, options_.optimizer.lr);
  for (const auto& g : plan_.groups) {
    trainable_.names.insert(trainable_.names.end(), g.names.begin(), g.names.end());
    trainable_.params.insert(trainable_.params.end(), g.params.begin(), g.params.end());
  }
  optimizer_ = make_optimizer(options_.optimizer, plan_);
  if (options_.frozen_bn == FrozenBatchNorm::kFreeze && !options_.trainable.empty()) {
    for (const auto& item : model_->named_modules()) {
      if (!nn::is_batch_norm(*item.value())) continue;
      bool trains = false;
      for (const auto& pattern : options_.trainable) {
        trains = trains || pattern_matches(pattern, item.key());
      }
      if (!trains) frozen_bns_.push_back(item.value());
    }
  }
}

void Trainer::set_train_mode() {
  model_->train();
  for (auto& bn : frozen_bns_) bn->eval();
}

EpochStats Trainer::train_epoch(data::Batcher& batcher, int64_t epoch) {
  set_train_mode();
  batcher.start_epoch(epoch);
  ProgressOptions po;
  po.label = options_.label;
  po.epochs = options_.epochs;
  po.steps_per_epoch = batcher.batches_per_epoch();
  po.enabled = options_.progress;
  Progress progress(po);

  auto start = std::chrono::steady_clock::now();
  // Device-side accumulators: read once at the end of the epoch.
  torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions(device_).dtype(torch::kDouble));
  torch::Tensor correct = torch::zeros({}, torch::TensorOptions(device_).dtype(torch::kLong));
  constexpr int64_t kNoBadStep = std::numeric_limits<int64_t>::max();
  torch::Tensor first_bad =
      torch::full({}, kNoBadStep, torch::TensorOptions(device_).dtype(torch::kLong));
  int64_t seen = 0;
  int64_t step = 0;
  data::Batch batch;
  while (batcher.next(batch)) {
    optimizer_->zero_grad();
    torch::Tensor logits = model_->forward(batch.x);  // (B, K)
    torch::Tensor loss = cross_entropy(logits, batch.y, options_.label_smoothing);
    loss.backward();

    StepContext ctx;
    ctx.epoch = epoch;
    ctx.step = step;
    ctx.global_step = global_step_;
    ctx.model = model_.ptr().get();
    ctx.trainable = &trainable_;
    ctx.loss = loss.detach();
    ctx.recorder = &recorder_;
    for (auto* o : observers_) o->after_backward(ctx);

    torch::Tensor pre_clip = clip_gradients(trainable_.params, options_.clip);
    optimizer_->step();
    for (auto* o : observers_) o->after_step(ctx);

    torch::Tensor l = loss.detach();
    recorder_.step_value("train/loss", global_step_, l);
    recorder_.step_value("grad_norm/total", global_step_, pre_clip);
    first_bad = torch::where(torch::isfinite(l), first_bad,
                             torch::minimum(first_bad, torch::full_like(first_bad, global_step_)));
    loss_sum += l.to(torch::kDouble) * batch.y.size(0);
    correct += logits.detach().argmax(1).eq(batch.y).sum();
    seen += batch.y.size(0);
    ++step;
    ++global_step_;
    progress.step(epoch, step, batch.y.size(0));
  }
  EpochStats stats;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  int64_t bad = first_bad.item<int64_t>();
  if (bad != kNoBadStep) {
    std::ostringstream problem;
    problem << "training loss became non-finite (NaN or Inf) at global step " << bad << " (epoch "
            << epoch + 1 << ")";
    throw Error("run " + options_.label, problem.str(),
                "lower the learning rate, enable gradient clipping (train.clip_norm), or check "
                "the input normalisation");
  }
  stats.loss = seen > 0 ? loss_sum.item<double>() / static_cast<double>(seen) : 0.0;
  stats.accuracy =
      seen > 0 ? 100.0 * static_cast<double>(correct.item<int64_t>()) / static_cast<double>(seen)
               : 0.0;
  stats.images_per_s = stats.seconds > 0 ? static_cast<double>(seen) / stats.seconds : 0.0;
  return stats;
}

EvalResult Trainer::evaluate(data::Batcher& batcher, const std::string& split, int64_t epoch) {
  EvalModeGuard eval_mode(*model_);
  torch::NoGradGuard no_grad;
  batcher.start_epoch(0);
  int64_t k = model_->options().num_classes;
  torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions(device_).dtype(torch::kDouble));
  torch::Tensor confusion = torch::zeros({k, k}, torch::TensorOptions(device_).dtype(torch::kLong));
  int64_t seen = 0;
  data::Batch batch;
  while (batcher.next(batch)) {
    torch::Tensor logits = model_->forward(batch.x);  // (B, K)
    // Evaluation reports plain cross-entropy: label smoothing is a training regulariser.
    loss_sum += cross_entropy(logits, batch.y).to(torch::kDouble) * batch.y.size(0);
    confusion += confusion_matrix(logits.argmax(1), batch.y, k);
    seen += batch.y.size(0);
  }
  EvalResult r;
  r.split = split;
  r.confusion = confusion.cpu();
  r.loss = seen > 0 ? loss_sum.item<double>() / static_cast<double>(seen) : 0.0;
  ClassMetrics m = metrics_from_confusion(r.confusion);
  r.accuracy = m.accuracy;
  r.macro_sensitivity = m.macro_sensitivity;
  r.macro_specificity = m.macro_specificity;
  r.macro_f1 = m.macro_f1;
  EpochContext ctx{epoch, model_.ptr().get(), &trainable_, &recorder_};
  for (auto* o : observers_) o->on_evaluation(ctx, r);
  return r;
}

void Trainer::save_checkpoint(const std::string& path, int64_t epochs_done) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  torch::serialize::OutputArchive optim_archive;
  model_->save(model_archive);
  optimizer_->save(optim_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optim_archive);
  archive.write("epochs_done", torch::tensor(epochs_done));
  archive.write("global_step", torch::tensor(global_step_));
  archive.write("cpu_rng_state", at::detail::getDefaultCPUGenerator().get_state());
  std::ostringstream os;
  archive.save_to(os);
  write_file_atomic(path, os.str());
}

int64_t Trainer::load_checkpoint(const std::string& path) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw Error(
        path, "not a readable normlab checkpoint (" + std::string(e.what_without_backtrace()) + ")",
        "delete the file to restart this run from scratch");
  }
  torch::serialize::InputArchive model_archive;
  torch::serialize::InputArchive optim_archive;
  torch::Tensor epochs_done, global_step, rng;
  try {
    archive.read("model", model_archive);
    archive.read("optimizer", optim_archive);
    archive.read("epochs_done", epochs_done);
    archive.read("global_step", global_step);
    archive.read("cpu_rng_state", rng);
    model_->load(model_archive);
    model_->to(device_);
    optimizer_->load(optim_archive);
  } catch (const c10::Error& e) {
    throw Error(path,
                "checkpoint does not match this run's model or optimizer (" +
                    std::string(e.what_without_backtrace()) + ")",
                "delete the file to restart this run from scratch");
  }
  at::Generator cpu_gen = at::detail::getDefaultCPUGenerator();
  cpu_gen.set_state(rng);
  global_step_ = global_step.item<int64_t>();
  return epochs_done.item<int64_t>();
}

}  // namespace normlab::train
