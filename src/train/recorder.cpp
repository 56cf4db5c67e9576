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

int64_t Recorder::push(torch::Tensor flat) {
  const int64_t offset = total_;
  total_ += flat.size(0);
  values_.push_back(std::move(flat));
  return offset;
}

void Recorder::step_values(const std::vector<std::string>& names, int64_t step,
                           torch::Tensor values) {
  // float32 first, as the series were always stored at float precision, then float64.
  torch::Tensor flat = values.detach().reshape({-1}).to(torch::kFloat).to(torch::kDouble);
  TORCH_CHECK(flat.size(0) == static_cast<int64_t>(names.size()), "Recorder: ", names.size(),
              " names for ", flat.size(0), " values");
  const int64_t n = flat.size(0);
  pending_.push_back({intern(names), step, push(std::move(flat)), n, false});
}

void Recorder::step_value(const std::string& name, int64_t step, torch::Tensor value) {
  step_values({name}, step, std::move(value));
}

void Recorder::epoch_value(const std::string& name, int64_t epoch, double value) {
  host_.epoch_scalars.push_back({name, epoch, value});
}

void Recorder::epoch_values(const std::vector<std::string>& names, int64_t epoch,
                            torch::Tensor values) {
  torch::Tensor flat = values.detach().reshape({-1}).to(torch::kDouble);
  TORCH_CHECK(flat.size(0) == static_cast<int64_t>(names.size()), "Recorder: ", names.size(),
              " names for ", flat.size(0), " values");
  const int64_t n = flat.size(0);
  pending_.push_back({intern(names), epoch, push(std::move(flat)), n, true});
}

void Recorder::histograms(const std::vector<std::string>& names, store::Axis axis, int64_t step,
                          const BinSpec& spec, torch::Tensor rows) {
  const int64_t width = spec.bins + kPackedStats;
  TORCH_CHECK(rows.dim() == 2 && rows.size(0) == static_cast<int64_t>(names.size()) &&
                  rows.size(1) == width,
              "Recorder: ", names.size(), " histograms ('", names.empty() ? "" : names.front(),
              "', ...) of ", spec.bins, " bins given values of shape ", rows.sizes());
  const std::vector<std::string>* interned = intern(names);
  const int64_t offset = push(rows.detach().reshape({-1}).to(torch::kDouble));
  for (size_t i = 0; i < names.size(); ++i) {
    histograms_.push_back(
        {&(*interned)[i], axis, step, spec, offset + static_cast<int64_t>(i) * width});
  }
}

void Recorder::surface(const std::string& name, int64_t epoch, store::Surface surface) {
  host_.surfaces.push_back({name, epoch, std::move(surface)});
}

void Recorder::matrix(const std::string& name, int64_t epoch, store::Matrix matrix) {
  host_.matrices.push_back({name, epoch, std::move(matrix)});
}

store::EpochRecords Recorder::flush() {
  store::EpochRecords out = std::move(host_);
  host_ = store::EpochRecords{};
  if (!values_.empty()) {
    // One host transfer for the whole epoch; values may live on different devices.
    std::vector<torch::Tensor> cpu;
    cpu.reserve(values_.size());
    torch::Device device = values_.front().device();
    for (auto& v : values_) cpu.push_back(v.device() == device ? v : v.to(device));
    torch::Tensor host = torch::cat(cpu).to(torch::kCPU).contiguous();
    const double* v = host.data_ptr<double>();
    out.step_scalars.reserve(out.step_scalars.size() + static_cast<size_t>(total_));
    for (const auto& p : pending_) {
      auto& dst = p.epoch ? out.epoch_scalars : out.step_scalars;
      for (int64_t i = 0; i < p.count; ++i) {
        dst.push_back({(*p.names)[static_cast<size_t>(i)], p.step, v[p.offset + i]});
      }
    }
    for (const auto& h : histograms_) {
      out.histograms.push_back({*h.name, h.axis, h.step, unpack_histogram(v + h.offset, h.spec)});
    }
  }
  pending_.clear();
  histograms_.clear();
  values_.clear();
  names_.clear();
  total_ = 0;
  return out;
}

}  // namespace normlab::train
