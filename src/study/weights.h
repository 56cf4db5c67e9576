// Initial weights for a run: "pretrain:<hash>" (the study's own pretraining run) or a path
// to a model file written by normlab (runs/<hash>/model.pt). torchvision .pth and
// safetensors files are a later addition (io/weights).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace normlab::study {

// Copies every parameter and buffer of `model` from the weights `ref`, except those whose
// path matches a pattern in `skip` (e.g. "head", replaced on purpose). Strict: a missing
// key, an unexpected key or a shape mismatch is an Error naming the key and the file.
void load_weights(torch::nn::Module& model, const std::string& ref,
                  const std::vector<std::string>& skip, const std::string& out_dir);

// Writes parameters and buffers atomically.
void save_final_weights(torch::nn::Module& model, const std::string& path);

}  // namespace normlab::study
