#include "models/recalibrate.h"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "models/model.h"
#include "models/norm_slots.h"
#include "nn/norm.h"

namespace normlab::models {
namespace {

// Stands in for one BN layer during the measuring pass: accumulates the per-channel count,
// mean and sum of squared deviations (M2) of its input in float64, merging batches with Chan
// et al.'s parallel formula (numerically stable, unlike sum and sum of squares), then
// returns the wrapped eval-mode BN's output unchanged.
class BatchNormRecorderImpl : public torch::nn::Module {
 public:
  explicit BatchNormRecorderImpl(torch::nn::AnyModule bn) : bn_(std::move(bn)) {}

  torch::Tensor forward(const torch::Tensor& x) {
    // x: (N, C) or (N, C, H, W) -> values per channel (C, n)
    const torch::Tensor v = x.detach().to(torch::kFloat64).transpose(0, 1).reshape({x.size(1), -1});
    const int64_t n = v.size(1);
    const torch::Tensor mean = v.mean(1);                              // (C)
    const torch::Tensor m2 = (v - mean.unsqueeze(1)).square().sum(1);  // (C)
    if (count_ == 0) {
      mean_ = mean;
      m2_ = m2;
    } else {
      const double total = static_cast<double>(count_ + n);
      const torch::Tensor delta = mean - mean_;
      mean_ = mean_ + delta * (static_cast<double>(n) / total);
      m2_ = m2_ + m2 + delta.square() * (static_cast<double>(count_) * n / total);
    }
    count_ += n;
    return bn_.forward(x);
  }

  int64_t count() const { return count_; }
  const torch::Tensor& mean() const { return mean_; }                                   // (C)
  torch::Tensor unbiased_var() const { return m2_ / static_cast<double>(count_ - 1); }  // (C)

 private:
  torch::nn::AnyModule bn_;
  int64_t count_ = 0;
  torch::Tensor mean_;
  torch::Tensor m2_;
};
TORCH_MODULE(BatchNormRecorder);

// Every AnyModule through which the model calls a BN layer: entries of Sequentials and the
// slots of NormSlotOwners.
std::vector<torch::nn::AnyModule*> batch_norm_slots(torch::nn::Module& model) {
  std::vector<torch::nn::AnyModule*> slots;
  auto keep_bn = [&](torch::nn::AnyModule* slot) {
    if (slot->is_empty()) return;
    // Norms whose eval mode uses running estimates of batch statistics: those to measure.
    auto traits = nn::norm_traits(*slot->ptr());
    if (traits && traits->running_statistics) slots.push_back(slot);
  };
  for (const auto& module : model.modules(/*include_self=*/true)) {
    if (auto* seq = dynamic_cast<torch::nn::SequentialImpl*>(module.get())) {
      for (auto& entry : *seq) keep_bn(&entry);
    }
    if (auto* owner = dynamic_cast<NormSlotOwner*>(module.get())) {
      for (auto* slot : owner->norm_slots()) keep_bn(slot);
    }
  }
  return slots;
}

// Puts the recorders into the slots and the original layers back on destruction, also when
// the forward pass throws.
class SlotSwap {
 public:
  void swap(torch::nn::AnyModule* slot, torch::nn::AnyModule replacement) {
    saved_.emplace_back(slot, *slot);
    *slot = std::move(replacement);
  }
  ~SlotSwap() {
    for (auto& [slot, original] : saved_) *slot = original;
  }

 private:
  std::vector<std::pair<torch::nn::AnyModule*, torch::nn::AnyModule>> saved_;
};

// Restores the training flag of every module (pre-order, so children's own flags win).
class ModeRestore {
 public:
  explicit ModeRestore(torch::nn::Module& model) {
    for (const auto& m : model.modules(/*include_self=*/true))
      flags_.emplace_back(m, m->is_training());
  }
  ~ModeRestore() {
    for (auto& [m, on] : flags_) m->train(on);
  }

 private:
  std::vector<std::pair<std::shared_ptr<torch::nn::Module>, bool>> flags_;
};

// running stats := (m, v); with keep_eval_output, weight and bias by the header's formula.
template <typename BN>
bool rewrite(torch::nn::Module* module, const BatchNormRecorderImpl& stats,
             const RecalibrateOptions& options, const std::string& path) {
  auto* bn = dynamic_cast<BN*>(module);
  if (bn == nullptr) return false;
  require(bn->options.track_running_stats(), "BatchNorm '" + path + "'",
          "has no running statistics to recalibrate (track_running_stats is off)");
  require(stats.count() > 1, "BatchNorm '" + path + "'",
          "saw " + std::to_string(stats.count()) + " values per channel during recalibration",
          "it needs at least 2: give more or larger batches, or check it is on the forward path");
  torch::NoGradGuard no_grad;
  const torch::Tensor m = stats.mean();
  const torch::Tensor v = stats.unbiased_var();
  if (options.keep_eval_output) {
    require(bn->options.affine(), "BatchNorm '" + path + "'",
            "has no affine parameters, so its eval output cannot be kept",
            "set keep_eval_output = false to only replace the running statistics");
    const double eps = bn->options.eps();
    const torch::Tensor w = bn->weight.to(torch::kFloat64);
    const torch::Tensor old_mean = bn->running_mean.to(torch::kFloat64);
    const torch::Tensor old_std = (bn->running_var.to(torch::kFloat64) + eps).sqrt();
    bn->bias.copy_(bn->bias.to(torch::kFloat64) + w * (m - old_mean) / old_std);
    bn->weight.copy_(w * (v + eps).sqrt() / old_std);
  }
  bn->running_mean.copy_(m);
  bn->running_var.copy_(v);
  return true;
}

}  // namespace

RecalibrateReport recalibrate_batchnorm(
    torch::nn::Module& model, const std::function<torch::Tensor(const torch::Tensor&)>& forward,
    const std::function<bool(torch::Tensor&)>& next_batch, const RecalibrateOptions& options) {
  // One recorder per BN layer (a layer reached through two slots shares its recorder).
  std::map<const torch::nn::Module*, BatchNormRecorder> recorders;
  RecalibrateReport report;
  {
    SlotSwap swap;
    for (torch::nn::AnyModule* slot : batch_norm_slots(model)) {
      auto it = recorders.find(slot->ptr().get());
      if (it == recorders.end()) {
        it = recorders.emplace(slot->ptr().get(), BatchNormRecorder(*slot)).first;
      }
      swap.swap(slot, torch::nn::AnyModule(it->second));
    }
    for (const auto& item : model.named_modules()) {
      if (!nn::is_batch_norm(*item.value())) continue;
      require(recorders.count(item.value().get()) > 0, "BatchNorm '" + item.key() + "'",
              "cannot be recalibrated: it is not called through a Sequential or a norm slot",
              "hold it in a torch::nn::Sequential or implement models::NormSlotOwner");
    }

    ModeRestore restore(model);
    model.eval();
    torch::NoGradGuard no_grad;
    torch::Tensor batch;
    while (next_batch(batch)) {
      forward(batch);
      ++report.batches;
      report.samples += batch.size(0);
    }
  }
  require(report.batches > 0, "recalibrate_batchnorm", "got no batches",
          "next_batch must fill its argument and return true at least once");

  for (const auto& item : model.named_modules()) {
    auto it = recorders.find(item.value().get());
    if (it == recorders.end()) continue;
    const bool done =
        rewrite<torch::nn::BatchNorm1dImpl>(item.value().get(), *it->second, options, item.key()) ||
        rewrite<torch::nn::BatchNorm2dImpl>(item.value().get(), *it->second, options, item.key()) ||
        rewrite<torch::nn::BatchNorm3dImpl>(item.value().get(), *it->second, options, item.key());
    if (done) ++report.layers;
  }
  return report;
}

RecalibrateReport recalibrate_batchnorm(torch::nn::Module& model,
                                        const std::function<bool(torch::Tensor&)>& next_batch,
                                        const RecalibrateOptions& options) {
  auto* classifier = dynamic_cast<ClassifierImpl*>(&model);
  require(classifier != nullptr, "recalibrate_batchnorm",
          "this overload needs a models::Classifier to know how to run the model",
          "pass the forward function explicitly (the overload taking `forward`)");
  return recalibrate_batchnorm(
      model, [classifier](const torch::Tensor& x) { return classifier->forward(x); }, next_batch,
      options);
}

}  // namespace normlab::models
