// Named tensors from pretrained weight files: PyTorch .pth archives (torch.save of a state
// dict, read natively: io/zip + io/pickle, no Python) and safetensors files.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace normlab::io {

struct StateDict {
  std::vector<std::pair<std::string, torch::Tensor>> items;  // in file order, CPU, contiguous
  // safetensors "__metadata__"; for a .pth, what the loader did ("normlab.unwrapped": the
  // checkpoint key the tensors came from, "normlab.ignored": the other keys, comma-separated).
  std::map<std::string, std::string> metadata;

  const torch::Tensor* find(const std::string& name) const;  // nullptr when absent
};

// Loads a .pth (zip magic "PK\3\4": torch.save(state_dict) since PyTorch 1.6) or a safetensors
// file, chosen by content, not by name. A .pth must hold a dict of tensors, or a checkpoint
// dict whose "state_dict" or "model" entry is one. Throws Error naming the file (and the
// entry) for anything else: pickled classes, non-tensor values, damaged or truncated files.
StateDict load_state_dict(const std::string& path);

// Writes `dict` as a safetensors file, atomically (normlab::write_file_atomic).
void save_safetensors(const std::string& path, const StateDict& dict);

}  // namespace normlab::io
