// Buffers a run's scalar records. Per-step values stay on the device as tensors and are
// copied to the host in one transfer when the epoch is flushed, so probing every step costs
// no host synchronisation (STYLE.md rule 10).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace normlab::train {

struct ScalarRow {
  std::string name;
  int64_t step = 0;  // global step for step series, epoch for epoch series
  double value = 0;
};

class Recorder {
 public:
  // values: (P) or () tensor on any device; names: P names (one for a 0-dim value).
  void step_values(const std::vector<std::string>& names, int64_t step, torch::Tensor values);
  void step_value(const std::string& name, int64_t step, torch::Tensor value);
  void epoch_value(const std::string& name, int64_t epoch, double value);

  struct Flushed {
    std::vector<ScalarRow> step;
    std::vector<ScalarRow> epoch;
  };
  // Copies pending device values to the host (one transfer) and clears the buffers.
  Flushed flush();

 private:
  struct Pending {
    const std::vector<std::string>* names;  // interned in names_
    int64_t step;
    int64_t offset;  // into the concatenated values
    int64_t count;
  };
  const std::vector<std::string>* intern(const std::vector<std::string>& names);

  std::vector<std::unique_ptr<std::vector<std::string>>> names_;
  std::vector<Pending> pending_;
  std::vector<torch::Tensor> values_;
  int64_t total_ = 0;
  std::vector<ScalarRow> epoch_rows_;
};

}  // namespace normlab::train
