// BatchNorm recalibration: replace each BN layer's running statistics by the statistics of
// its input measured on data, rewriting its affine parameters so that the eval-mode output of
// the network is unchanged. Needed before training a BN-folded model in train mode: TF-origin
// weights store BN as weight 1, running_mean 0, running_var 1 - eps, which are not real
// statistics (/work/shared/data/README.md), and train-mode BN would renormalise with the
// batch's statistics and change the network.
//
// For a BN with old (w, b, m_old, v_old) and measured input statistics (m, v), eval output
//   w (x - m_old) / sqrt(v_old + eps) + b  ==  w' (x - m) / sqrt(v + eps) + b'
// for all x exactly when
//   w' = w sqrt(v + eps) / sqrt(v_old + eps),   b' = b + w (m - m_old) / sqrt(v_old + eps).
// (For a folded BN, w = 1, m_old = 0, v_old + eps = 1: w' = sqrt(v + eps), b' = b + m.)
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>

namespace normlab::models {

struct RecalibrateOptions {
  // true: rewrite weight and bias so eval outputs are unchanged (the formula above).
  // false: only replace running_mean/running_var (eval outputs change: the classic
  // "recompute BN statistics" after e.g. weight averaging).
  bool keep_eval_output = true;
};

struct RecalibrateReport {
  int64_t layers = 0;   // BatchNorm layers recalibrated
  int64_t batches = 0;  // batches drawn from next_batch
  int64_t samples = 0;  // their total batch size
};

// Runs `model` once over the batches that `next_batch` fills (it returns false when there
// are no more), in eval mode under torch::NoGradGuard, and records the per-channel mean and
// variance of every BatchNorm1d/2d input. All layers are measured in the same pass under
// the ORIGINAL eval-mode network: each BN is temporarily wrapped by a recorder that
// accumulates its input's statistics and then calls the eval-mode BN, so downstream layers
// see unchanged activations.
//   m = mean over all N*H*W values of all batches (per channel);
//   v = their pooled UNBIASED variance (divisor count - 1), merged across batches with Chan
//       et al.'s formula in float64 — the convention of PyTorch's running_var.
// Afterwards running_mean = m, running_var = v (cast to the buffers' dtype) and the training
// mode of every module is restored.
// BN layers must sit in a Sequential or in a module implementing models::NormSlotOwner
// (every normlab model); otherwise this throws Error naming the layer's path. Also throws
// when no batch is given, when a BN saw no data, or when a BN has no affine parameters but
// keep_eval_output is set.
// This overload runs models::Classifier's forward (Error for any other module type).
RecalibrateReport recalibrate_batchnorm(torch::nn::Module& model,
                                        const std::function<bool(torch::Tensor&)>& next_batch,
                                        const RecalibrateOptions& options = {});

// Any module: `forward` runs it on one batch (its output is ignored).
RecalibrateReport recalibrate_batchnorm(
    torch::nn::Module& model, const std::function<torch::Tensor(const torch::Tensor&)>& forward,
    const std::function<bool(torch::Tensor&)>& next_batch, const RecalibrateOptions& options = {});

}  // namespace normlab::models
