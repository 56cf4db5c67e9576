// Initial weights for a run. `ref` is one of
//   "pretrain:<hash>"                         the study's own pretraining run
//   "torchvision:mobilenet_v2:IMAGENET1K_V1"  a registered pretrained checkpoint (downloaded
//                                             into the cache once, sha256-verified)
//   a path                                    a torchvision .pth or a safetensors file
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "io/state_dict.h"

namespace normlab::study {

struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> skipped;     // matched a weights_skip pattern
  std::vector<std::string> missing;     // in the model, not in the file
  std::vector<std::string> unexpected;  // in the file, not in the model
  std::vector<std::string> mismatched;  // "name: file (a, b) vs model (c, d)"
};

// Copies tensors into the model's parameters and buffers by name. Entries whose path matches
// a `skip` pattern are left alone on both sides (a head replaced on purpose). With `strict`,
// any missing, unexpected or mismatched entry is an Error naming the file and listing them.
LoadReport apply_state_dict(torch::nn::Module& model, const io::StateDict& dict,
                            const std::vector<std::string>& skip, bool strict,
                            const std::string& source);

// Resolves `ref` to a file (downloading registered weights when needed).
std::string resolve_weights(const std::string& ref, const std::string& out_dir);

// resolve_weights + load + apply_state_dict(strict).
LoadReport load_weights(torch::nn::Module& model, const std::string& ref,
                        const std::vector<std::string>& skip, const std::string& out_dir);

// Writes parameters and buffers as safetensors, atomically.
void save_final_weights(torch::nn::Module& model, const std::string& path);

}  // namespace normlab::study
