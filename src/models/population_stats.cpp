#include "models/population_stats.h"

#include <map>
#include <memory>
#include <utility>

#include "core/error.h"
#include "models/norm_slots.h"
#include "nn/norm.h"

namespace normlab::models {
namespace {

// Stands in for one norm layer during the measuring pass: accumulates the per-channel count,
// mean and sum of squared deviations (M2) of its input in float64, merging batches with Chan
// et al.'s parallel formula (numerically stable, unlike sum and sum of squares), then returns
// the wrapped layer's output unchanged.
class InputRecorderImpl : public torch::nn::Module {
 public:
  explicit InputRecorderImpl(torch::nn::AnyModule layer) : layer_(std::move(layer)) {}

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
    return layer_.forward(x);
  }

  int64_t count() const { return count_; }
  const torch::Tensor& mean() const { return mean_; }  // (C)
  torch::Tensor unbiased_var() const {
    return count_ > 1 ? m2_ / static_cast<double>(count_ - 1) : m2_;
  }

 private:
  torch::nn::AnyModule layer_;
  int64_t count_ = 0;
  torch::Tensor mean_, m2_;
};
TORCH_MODULE(InputRecorder);

bool has_running_statistics(const torch::nn::Module& m) {
  auto traits = nn::norm_traits(m);
  return traits && traits->running_statistics;
}

// Every AnyModule through which the model calls a running-statistics norm: entries of
// Sequentials and the slots of NormSlotOwners.
std::vector<torch::nn::AnyModule*> norm_slots_of(torch::nn::Module& model) {
  std::vector<torch::nn::AnyModule*> slots;
  auto keep = [&](torch::nn::AnyModule* slot) {
    if (!slot->is_empty() && has_running_statistics(*slot->ptr())) slots.push_back(slot);
  };
  for (const auto& module : model.modules(/*include_self=*/true)) {
    if (auto* seq = dynamic_cast<torch::nn::SequentialImpl*>(module.get())) {
      for (auto& entry : *seq) keep(&entry);
    }
    if (auto* owner = dynamic_cast<NormSlotOwner*>(module.get())) {
      for (auto* slot : owner->norm_slots()) keep(slot);
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

// Restores the training flag of every module (pre-order, so children's own flags win) and,
// for layers run in train mode, their buffers (running estimates, DMBN shadows).
class StateRestore {
 public:
  explicit StateRestore(torch::nn::Module& model) {
    for (const auto& m : model.modules(/*include_self=*/true))
      flags_.emplace_back(m, m->is_training());
  }
  void keep_buffers(torch::nn::Module& m) {
    for (auto& b : m.buffers(/*recurse=*/false)) buffers_.emplace_back(b, b.clone());
  }
  ~StateRestore() {
    torch::NoGradGuard no_grad;
    for (auto& [live, saved] : buffers_) live.copy_(saved);
    for (auto& [m, on] : flags_) m->train(on);
  }

 private:
  std::vector<std::pair<std::shared_ptr<torch::nn::Module>, bool>> flags_;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> buffers_;
};

}  // namespace

std::vector<LayerPopulation> measure_population(
    torch::nn::Module& model, const std::function<torch::Tensor(const torch::Tensor&)>& forward,
    const std::function<void(const std::function<void(const torch::Tensor&)>& consume)>& feed,
    const PopulationOptions& options) {
  // One recorder per layer (a layer reached through two slots shares its recorder).
  std::map<const torch::nn::Module*, InputRecorder> recorders;
  int64_t batches = 0;
  {
    SlotSwap swap;
    for (torch::nn::AnyModule* slot : norm_slots_of(model)) {
      auto it = recorders.find(slot->ptr().get());
      if (it == recorders.end()) {
        it = recorders.emplace(slot->ptr().get(), InputRecorder(*slot)).first;
      }
      swap.swap(slot, torch::nn::AnyModule(it->second));
    }
    for (const auto& item : model.named_modules()) {
      if (!has_running_statistics(*item.value())) continue;
      require(recorders.count(item.value().get()) > 0, "norm layer '" + item.key() + "'",
              "cannot be measured: it is not called through a Sequential or a norm slot",
              "hold it in a torch::nn::Sequential or implement models::NormSlotOwner");
    }
    StateRestore restore(model);
    model.eval();
    if (options.upstream_train) {
      for (const auto& item : model.named_modules()) {
        if (!nn::is_batch_norm(*item.value())) continue;
        restore.keep_buffers(*item.value());
        item.value()->train();
      }
    }
    torch::NoGradGuard no_grad;
    feed([&](const torch::Tensor& x) {
      forward(x);
      ++batches;
    });
  }
  require(batches > 0, "population statistics", "got no batches", "the evaluation split is empty");
  std::vector<LayerPopulation> out;
  for (const auto& item : model.named_modules()) {
    auto it = recorders.find(item.value().get());
    if (it == recorders.end()) continue;
    LayerPopulation p;
    p.path = item.key();
    p.module = item.value().get();
    p.count = it->second->count();
    p.mean = it->second->mean();
    if (p.count > 0) p.var = it->second->unbiased_var();
    out.push_back(std::move(p));
  }
  return out;
}

RunningEstimate running_estimate(torch::nn::Module& layer, const std::string& path) {
  RunningEstimate e;
  for (const auto& b : layer.named_buffers(/*recurse=*/false)) {
    if (b.key() == "running_mean") e.mean = b.value();
    if (b.key() == "running_var") e.var = b.value();
  }
  require(e.mean.defined() && e.var.defined(), "norm layer '" + path + "'",
          "keeps no running estimate (running_mean / running_var buffers)",
          "ESM and DMBN need BatchNorm layers that track running statistics");
  return e;
}

}  // namespace normlab::models
