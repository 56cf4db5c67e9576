// Buffers a run's records of one epoch: scalar series, histograms, surfaces and matrices
// (the typed records of store/records.h). Per-step values and histograms stay on the device
// as tensors and are copied to the host in one transfer when the epoch is flushed, so probing
// every step costs no host synchronisation (STYLE.md rule 10).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "store/records.h"
#include "train/histogram.h"

namespace normlab::train {

class Recorder {
 public:
  // values: (P) or () tensor on any device; names: P names (one for a 0-dim value).
  void step_values(const std::vector<std::string>& names, int64_t step, torch::Tensor values);
  void step_value(const std::string& name, int64_t step, torch::Tensor value);
  void epoch_value(const std::string& name, int64_t epoch, double value);
  // Per-epoch values still on the device (e.g. a probe's epoch accumulators).
  void epoch_values(const std::vector<std::string>& names, int64_t epoch, torch::Tensor values);
  // rows: (H, bins + kPackedStats), a packed histogram (train/histogram.h) per name, on any
  // device: one buffered tensor however many histograms a probe records per step.
  void histograms(const std::vector<std::string>& names, store::Axis axis, int64_t step,
                  const BinSpec& spec, torch::Tensor rows);
  void surface(const std::string& name, int64_t epoch, store::Surface surface);
  void matrix(const std::string& name, int64_t epoch, store::Matrix matrix);

  // Copies pending device values to the host (one transfer) and clears the buffers.
  store::EpochRecords flush();

 private:
  struct Pending {
    const std::vector<std::string>* names;  // interned in names_
    int64_t step;
    int64_t offset;  // into the concatenated values
    int64_t count;
    bool epoch;  // an epoch series
  };
  struct PendingHistogram {
    const std::string* name;  // interned in names_
    store::Axis axis;
    int64_t step;
    BinSpec spec;
    int64_t offset;
  };
  const std::vector<std::string>* intern(const std::vector<std::string>& names);
  int64_t push(torch::Tensor flat);

  std::vector<std::unique_ptr<std::vector<std::string>>> names_;
  std::vector<Pending> pending_;
  std::vector<PendingHistogram> histograms_;
  std::vector<torch::Tensor> values_;  // float64, concatenated at flush
  int64_t total_ = 0;
  store::EpochRecords host_;  // records already on the host
};

}  // namespace normlab::train
