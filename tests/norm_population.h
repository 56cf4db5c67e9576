// Shared by the ESM probe and DMBN tests: evaluation batches as the study engine provides
// them (train::EvalBatches), and the input of every norm layer of an mlp or small_cnn
// Classifier computed by hand, block by block, so tests recompute population statistics
// without models::measure_population.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "data/batcher.h"
#include "models/model.h"
#include "train/observer.h"

namespace normlab::testing {

// Fixed batches for the splits it has; counts the passes made over each split.
class FakeEvalBatches : public train::EvalBatches {
 public:
  FakeEvalBatches(std::vector<torch::Tensor> xs, std::set<std::string> splits = {"val"})
      : splits_(std::move(splits)) {
    for (auto& x : xs) {
      data::Batch b;
      b.y = torch::zeros({x.size(0)}, torch::kLong);
      b.x = std::move(x);
      batches_.push_back(std::move(b));
    }
  }
  bool has_split(const std::string& split) const override { return splits_.count(split) > 0; }
  int64_t input_stage() const override { return 0; }
  void for_each(const std::string& split, int64_t max_batches, int64_t stage,
                const std::function<bool(const data::Batch&)>& fn) override {
    passes[split]++;
    stages.push_back(stage);
    int64_t n = 0;
    for (const auto& b : batches_) {
      if (max_batches > 0 && n++ == max_batches) break;
      if (!fn(b)) break;
    }
  }
  std::vector<torch::Tensor> images() const {
    std::vector<torch::Tensor> out;
    for (const auto& b : batches_) out.push_back(b.x);
    return out;
  }

  std::map<std::string, int> passes;  // split -> for_each calls
  std::vector<int64_t> stages;

 private:
  std::set<std::string> splits_;
  std::vector<data::Batch> batches_;
};

// The input of every norm slot ("features.<i>.1", and "head.1" for an mlp head) of an mlp or
// small_cnn Classifier over `batches`, concatenated, in float64: each block's Linear/Conv,
// norm and ReLU run by hand in eval mode. With `upstream_train`, every norm with running
// statistics normalises each batch with that batch's own statistics instead (the input of
// layer l then depends on the batch statistics of layers < l). The model's mode is restored.
inline std::map<std::string, torch::Tensor> norm_inputs(models::ClassifierImpl& model,
                                                        const std::vector<torch::Tensor>& batches,
                                                        bool upstream_train = false) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  // A norm slot's output: running statistics (eval), or the batch's own ones.
  auto normalise = [&](torch::nn::AnyModule& slot, const torch::Tensor& z) {
    auto buffers = slot.ptr()->named_buffers(/*recurse=*/false);
    if (!upstream_train || !buffers.contains("running_mean")) return slot.forward(z);
    auto params = slot.ptr()->named_parameters(/*recurse=*/false);
    return torch::batch_norm(z, params["weight"], params["bias"], {}, {}, /*training=*/true, 0.0,
                             1e-5, false);
  };
  std::map<std::string, std::vector<torch::Tensor>> parts;
  for (const auto& x : batches) {
    torch::Tensor h = x;
    for (size_t i = 0; i < model.features->size(); ++i) {
      auto it = model.features->begin() + static_cast<std::ptrdiff_t>(i);
      auto* block = dynamic_cast<torch::nn::SequentialImpl*>(it->ptr().get());
      if (block == nullptr) {  // mlp's Flatten
        h = it->forward(h);
        continue;
      }
      auto layer = block->begin();
      const torch::Tensor z = layer->forward(h);  // Linear / Conv
      parts["features." + std::to_string(i) + ".1"].push_back(z.to(torch::kDouble));
      h = (layer + 2)->forward(normalise(*(layer + 1), z));  // norm, ReLU
    }
    if (h.dim() == 4) h = h.mean({2, 3});  // small_cnn's global average pooling
    if (model.head->size() > 1) {
      const torch::Tensor z = model.head->begin()->forward(h);
      parts["head.1"].push_back(z.to(torch::kDouble));
    }
  }
  model.train(was_training);
  std::map<std::string, torch::Tensor> out;
  for (auto& [path, list] : parts) out[path] = torch::cat(list);
  return out;
}

// Per-channel mean and unbiased variance of (N, C) or (N, C, H, W) values.
inline std::pair<torch::Tensor, torch::Tensor> channel_stats(const torch::Tensor& v) {
  const auto flat = v.transpose(0, 1).reshape({v.size(1), -1});
  return {flat.mean(1), flat.var(1, /*unbiased=*/true)};
}

// Random running estimates for every layer that keeps them, so eval-mode layers are far from
// the statistics they see.
inline void randomize_running_estimates(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (const auto& m : model.modules()) {
    auto buffers = m->named_buffers(/*recurse=*/false);
    if (!buffers.contains("running_mean")) continue;
    buffers["running_mean"].copy_(0.5 * torch::randn_like(buffers["running_mean"]));
    buffers["running_var"].copy_(0.3 + 2.0 * torch::rand_like(buffers["running_var"]));
  }
}

}  // namespace normlab::testing
