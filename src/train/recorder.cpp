#include "train/recorder.h"

namespace normlab::train {

const std::vector<std::string>* Recorder::intern(const std::vector<std::string>& names) {
  // Probes pass the same name list every step; compare against the most recent lists.
  for (auto it = names_.rbegin(); it != names_.rend(); ++it) {
    if (**it == names) return it->get();
  }
  names_.push_back(std::make_unique<std::vector<std::string>>(names));
  return names_.back().get();
}

void Recorder::step_values(const std::vector<std::string>& names, int64_t step,
                           torch::Tensor values) {
  torch::Tensor flat = values.detach().reshape({-1}).to(torch::kFloat);
  TORCH_CHECK(flat.size(0) == static_cast<int64_t>(names.size()), "Recorder: ", names.size(),
              " names for ", flat.size(0), " values");
  pending_.push_back({intern(names), step, total_, flat.size(0)});
  values_.push_back(flat);
  total_ += flat.size(0);
}

void Recorder::step_value(const std::string& name, int64_t step, torch::Tensor value) {
  step_values({name}, step, std::move(value));
}

void Recorder::epoch_value(const std::string& name, int64_t epoch, double value) {
  epoch_rows_.push_back({name, epoch, value});
}

Recorder::Flushed Recorder::flush() {
  Flushed out;
  if (!values_.empty()) {
    torch::Tensor host = torch::cat(values_).to(torch::kCPU, torch::kDouble).contiguous();
    const double* v = host.data_ptr<double>();
    out.step.reserve(static_cast<size_t>(total_));
    for (const auto& p : pending_) {
      for (int64_t i = 0; i < p.count; ++i) {
        out.step.push_back({(*p.names)[static_cast<size_t>(i)], p.step, v[p.offset + i]});
      }
    }
  }
  out.epoch = std::move(epoch_rows_);
  pending_.clear();
  values_.clear();
  names_.clear();
  epoch_rows_.clear();
  total_ = 0;
  return out;
}

}  // namespace normlab::train
