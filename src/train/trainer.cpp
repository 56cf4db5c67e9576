#include "train/trainer.h"

#include <algorithm>
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

namespace {

constexpr int64_t kNoBadStep = std::numeric_limits<int64_t>::max();

// The default generator of `device` (CPU, or the CUDA device's own) — what dropout draws from.
at::Generator device_generator(torch::Device device) {
  if (device.is_cuda() && !device.has_index()) device = torch::Device(device.type(), 0);
  return at::globalContext().defaultGenerator(device);
}

// Swaps a run's generator state into the device's default generator for one scope.
class RngScope {
 public:
  RngScope(torch::Device device, torch::Tensor& state)
      : gen_(device_generator(device)), state_(state), saved_(gen_.get_state()) {
    gen_.set_state(state_);
  }
  ~RngScope() {
    state_ = gen_.get_state();
    gen_.set_state(saved_);
  }
  RngScope(const RngScope&) = delete;
  RngScope& operator=(const RngScope&) = delete;

 private:
  at::Generator gen_;
  torch::Tensor& state_;
  torch::Tensor saved_;
};

// A stream apart from the one that initialised the weights (same seed).
constexpr uint64_t kDropoutStream = 0x9E3779B97F4A7C15ULL;  // 2^64 / golden ratio

}  // namespace

void describe(TrainOptions& o, OptionFields& f) {
  f.field("epochs", o.epochs, Range{1, std::numeric_limits<double>::infinity(), "> 0"});
  f.table("optimizer", o.optimizer);
  f.field("trainable", o.trainable, Empty::kAllowed);
  f.tables("param_groups", o.param_groups);
  f.field("frozen_bn", o.frozen_bn,
          {{"update", FrozenBatchNorm::kUpdate}, {"freeze", FrozenBatchNorm::kFreeze}});
  describe(o.clip, f);
  f.field("label_smoothing", o.label_smoothing, Range{0, 0.99, "in [0, 1)"});
}

Trainer::Trainer(models::Classifier model, TrainOptions options, torch::Device device)
    : model_(std::move(model)), options_(std::move(options)), device_(device) {
  model_->to(device_);
  plan();
  {
    at::Generator gen = device_generator(device_);
    torch::Tensor saved = gen.get_state();
    gen.set_current_seed(options_.seed ^ kDropoutStream);
    rng_state_ = gen.get_state();
    gen.set_state(saved);
  }
}

void Trainer::plan() {
  plan_ =
      plan_parameters(*model_, options_.trainable, options_.param_groups, options_.optimizer.lr);
  trainable_.names.clear();
  trainable_.params.clear();
  for (const auto& g : plan_.groups) {
    trainable_.names.insert(trainable_.names.end(), g.names.begin(), g.names.end());
    trainable_.params.insert(trainable_.params.end(), g.params.begin(), g.params.end());
  }
  optimizer_ = make_optimizer(options_.optimizer, plan_);
  frozen_bns_.clear();
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

void Trainer::set_phase(const TrainOptions& options, bool keep_state) {
  std::vector<std::pair<torch::Tensor, std::unique_ptr<torch::optim::OptimizerParamState>>> kept;
  if (keep_state) {
    for (const auto& p : trainable_.params) {
      if (auto* s = find_param_state(*optimizer_, p)) kept.emplace_back(p, s->clone());
    }
  }
  options_.optimizer = options.optimizer;
  options_.trainable = options.trainable;
  options_.param_groups = options.param_groups;
  options_.frozen_bn = options.frozen_bn;
  // Gradients of parameters that stop training would linger, unused, in .grad.
  for (auto& p : model_->parameters()) {
    if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
  }
  plan();
  for (auto& [p, s] : kept) {
    if (std::find_if(trainable_.params.begin(), trainable_.params.end(),
                     [&](const auto& t) { return t.is_same(p); }) != trainable_.params.end()) {
      set_param_state(*optimizer_, p, std::move(s));
    }
  }
}

EvalAccumulator::EvalAccumulator(int64_t num_classes, torch::Device device)
    : num_classes_(num_classes),
      loss_sum_(torch::zeros({}, torch::TensorOptions(device).dtype(torch::kDouble))),
      confusion_(torch::zeros({num_classes, num_classes},
                              torch::TensorOptions(device).dtype(torch::kLong))) {}

void EvalAccumulator::add(const torch::Tensor& logits, const torch::Tensor& y) {
  // logits (B, K), y (B)
  loss_sum_ += cross_entropy(logits, y).to(torch::kDouble) * y.size(0);
  confusion_ += confusion_matrix(logits.argmax(1), y, num_classes_);
  seen_ += y.size(0);
}

EvalResult EvalAccumulator::result(const std::string& split) const {
  EvalResult r;
  r.split = split;
  r.confusion = confusion_.cpu();
  r.loss = seen_ > 0 ? loss_sum_.item<double>() / static_cast<double>(seen_) : 0.0;
  ClassMetrics m = metrics_from_confusion(r.confusion);
  r.accuracy = m.accuracy;
  r.macro_sensitivity = m.macro_sensitivity;
  r.macro_specificity = m.macro_specificity;
  r.macro_f1 = m.macro_f1;
  return r;
}

void Trainer::set_train_mode() {
  model_->train();
  for (auto& bn : frozen_bns_) bn->eval();
}

void Trainer::begin_epoch(int64_t epoch, int64_t steps_per_epoch) {
  set_train_mode();
  ProgressOptions po;
  po.label = options_.label;
  po.epochs = options_.epochs;
  po.steps_per_epoch = steps_per_epoch;
  po.enabled = options_.progress;
  epoch_.epoch = epoch;
  epoch_.step = 0;
  epoch_.steps = steps_per_epoch;
  epoch_.seen = 0;
  epoch_.progress = std::make_unique<Progress>(po);
  epoch_.start = std::chrono::steady_clock::now();
  // Device-side accumulators: read once at the end of the epoch.
  epoch_.loss_sum = torch::zeros({}, torch::TensorOptions(device_).dtype(torch::kDouble));
  epoch_.correct = torch::zeros({}, torch::TensorOptions(device_).dtype(torch::kLong));
  epoch_.first_bad = torch::full({}, kNoBadStep, torch::TensorOptions(device_).dtype(torch::kLong));
}

torch::Tensor Trainer::logits(const torch::Tensor& input) {
  return model_->forward_from(input, options_.input_stage);
}

void Trainer::train_step(const torch::Tensor& input, const Targets& targets) {
  const torch::Tensor& y = targets.y;
  TORCH_CHECK(y.dim() == 1 && y.size(0) == input.size(0), "targets ", y.sizes(),
              " do not match inputs ", input.sizes());
  RngScope rng(device_, rng_state_);
  optimizer_->zero_grad();
  torch::Tensor out;  // (B, K)
  try {
    out = logits(input);
  } catch (const c10::Error& e) {
    // BatchNorm in train mode cannot normalise one sample: say which batch and what to change
    // instead of c10's message and backtrace.
    if (input.size(0) == 1 &&
        std::string(e.what_without_backtrace()).find("more than 1 value per channel") !=
            std::string::npos) {
      throw Error("run " + options_.label,
                  "a training batch of 1 image reached a BatchNorm layer in train mode (epoch " +
                      std::to_string(epoch_.epoch + 1) + ", step " +
                      std::to_string(epoch_.step + 1) + "): batch statistics need 2 or more",
                  "the training set leaves a last batch of 1 image: change train.batch_size, "
                  "data.val_fraction or data.train_limit by one");
    }
    throw;
  }
  torch::Tensor loss;
  if (targets.lam.defined()) {
    TORCH_CHECK(targets.y2.defined() && targets.lam.sizes() == y.sizes(),
                "mixed targets need y2 and lam of shape ", y.sizes());
    // Per-sample mix: lam_i CE(y_i) + (1 - lam_i) CE(y2_i) (Zhang et al. 2018; Yun et al. 2019).
    torch::Tensor a = cross_entropy_per_sample(out, y, options_.label_smoothing);
    torch::Tensor b = cross_entropy_per_sample(out, targets.y2, options_.label_smoothing);
    loss = (targets.lam * a + (1 - targets.lam) * b).mean();
  } else {
    loss = cross_entropy(out, y, options_.label_smoothing);
  }
  loss.backward();

  StepContext ctx;
  ctx.epoch = epoch_.epoch;
  ctx.step = epoch_.step;
  ctx.steps_per_epoch = epoch_.steps;
  ctx.global_step = global_step_;
  ctx.model = model_.ptr().get();
  ctx.trainable = &trainable_;
  ctx.loss = loss.detach();
  ctx.clip = options_.clip;
  ctx.recorder = &recorder_;
  ctx.input = input;
  ctx.y = y;
  ctx.input_stage = options_.input_stage;
  ctx.optimizer = optimizer_.get();
  for (auto* o : observers_) o->after_backward(ctx);

  torch::Tensor pre_clip = clip_gradients(trainable_.params, options_.clip);
  ctx.pre_clip_norm = pre_clip;
  for (auto* o : observers_) o->after_clip(ctx);
  optimizer_->step();
  for (auto* o : observers_) o->after_step(ctx);

  torch::Tensor l = loss.detach();
  recorder_.step_value("train/loss", global_step_, l);
  recorder_.step_value("grad_norm/total", global_step_, pre_clip);
  epoch_.first_bad = torch::where(
      torch::isfinite(l), epoch_.first_bad,
      torch::minimum(epoch_.first_bad, torch::full_like(epoch_.first_bad, global_step_)));
  epoch_.loss_sum += l.to(torch::kDouble) * y.size(0);
  epoch_.correct += out.detach().argmax(1).eq(y).sum();
  epoch_.seen += y.size(0);
  ++epoch_.step;
  ++global_step_;
  epoch_.progress->step(epoch_.epoch, epoch_.step, y.size(0));
}

EpochStats Trainer::end_epoch() {
  EpochStats stats;
  stats.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_.start).count();
  int64_t bad = epoch_.first_bad.item<int64_t>();
  if (bad != kNoBadStep) {
    std::ostringstream problem;
    problem << "training loss became non-finite (NaN or Inf) at global step " << bad << " (epoch "
            << epoch_.epoch + 1 << ")";
    throw Error("run " + options_.label, problem.str(),
                "lower the learning rate, enable gradient clipping (train.clip_norm), or check "
                "the input normalisation");
  }
  const auto seen = static_cast<double>(epoch_.seen);
  stats.loss = epoch_.seen > 0 ? epoch_.loss_sum.item<double>() / seen : 0.0;
  stats.accuracy =
      epoch_.seen > 0 ? 100.0 * static_cast<double>(epoch_.correct.item<int64_t>()) / seen : 0.0;
  stats.images_per_s = stats.seconds > 0 ? seen / stats.seconds : 0.0;
  epoch_.progress.reset();
  return stats;
}

EpochContext Trainer::epoch_context(int64_t epoch, EvalBatches* eval) {
  return EpochContext{epoch, model_.ptr().get(), &trainable_, &recorder_, eval};
}

void Trainer::notify_evaluation(const EvalResult& result, int64_t epoch) {
  EpochContext ctx = epoch_context(epoch, nullptr);
  for (auto* o : observers_) o->on_evaluation(ctx, result);
}

void Trainer::notify_run_start(EvalBatches* eval) {
  EpochContext ctx = epoch_context(0, eval);
  for (auto* o : observers_) o->on_run_start(ctx);
}

void Trainer::notify_train_epoch_end(int64_t epoch, EvalBatches* eval) {
  EpochContext ctx = epoch_context(epoch, eval);
  for (auto* o : observers_) o->after_train_epoch(ctx);
}

void Trainer::notify_epoch_end(int64_t epoch, EvalBatches* eval) {
  EpochContext ctx = epoch_context(epoch, eval);
  for (auto* o : observers_) o->on_epoch_end(ctx);
}

void Trainer::notify_run_end(int64_t epoch, EvalBatches* eval) {
  EpochContext ctx = epoch_context(epoch, eval);
  for (auto* o : observers_) o->on_run_end(ctx);
}

void Trainer::save_checkpoint(const std::string& path, int64_t epochs_done,
                              const nlohmann::json& extra) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  torch::serialize::OutputArchive optim_archive;
  model_->save(model_archive);
  optimizer_->save(optim_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optim_archive);
  archive.write("epochs_done", torch::tensor(epochs_done));
  archive.write("global_step", torch::tensor(global_step_));
  archive.write("rng_state", rng_state_);
  archive.write("extra", c10::IValue(extra.dump()));
  std::ostringstream os;
  archive.save_to(os);
  write_file_atomic(path, os.str());
}

int64_t Trainer::checkpoint_epochs(const std::string& path) {
  torch::serialize::InputArchive archive;
  torch::Tensor epochs_done;
  try {
    archive.load_from(path);
    archive.read("epochs_done", epochs_done);
  } catch (const c10::Error& e) {
    throw Error(
        path, "not a readable normlab checkpoint (" + std::string(e.what_without_backtrace()) + ")",
        "delete the file to restart this run from scratch");
  }
  return epochs_done.item<int64_t>();
}

int64_t Trainer::load_checkpoint(const std::string& path, nlohmann::json* extra) {
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
  c10::IValue extra_text;
  try {
    archive.read("model", model_archive);
    archive.read("optimizer", optim_archive);
    archive.read("epochs_done", epochs_done);
    archive.read("global_step", global_step);
    archive.read("rng_state", rng);
    archive.read("extra", extra_text);
    model_->load(model_archive);
    model_->to(device_);
    optimizer_->load(optim_archive);
  } catch (const c10::Error& e) {
    throw Error(path,
                "checkpoint does not match this run's model or optimizer (" +
                    std::string(e.what_without_backtrace()) + ")",
                "delete the file to restart this run from scratch");
  }
  rng_state_ = rng;
  global_step_ = global_step.item<int64_t>();
  if (extra != nullptr) *extra = nlohmann::json::parse(extra_text.toStringRef());
  return epochs_done.item<int64_t>();
}

}  // namespace normlab::train
