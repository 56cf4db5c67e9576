#include "data/dataset.h"

#include <cmath>
#include <set>

#include "core/error.h"
#include "core/runtime.h"

namespace normlab::data {
namespace {

std::string subject_of(const Dataset& ds) { return "dataset '" + ds.name + "'"; }

std::string shape_of(const torch::Tensor& t) {
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + ")";
}

}  // namespace

void Dataset::validate() const {
  const std::string subject = subject_of(*this);
  require(images.defined() && labels.defined(), subject, "images or labels are missing");
  require(images.dim() == 4, subject, "images must be (N, C, H, W), got shape " + shape_of(images));
  require(images.scalar_type() == torch::kUInt8, subject,
          std::string("images must be uint8, got ") + c10::toString(images.scalar_type()));
  require(labels.dim() == 1, subject, "labels must be (N), got shape " + shape_of(labels));
  require(labels.scalar_type() == torch::kInt64, subject,
          std::string("labels must be int64, got ") + c10::toString(labels.scalar_type()));
  require(
      images.size(0) == labels.size(0), subject,
      std::to_string(images.size(0)) + " images but " + std::to_string(labels.size(0)) + " labels");
  require(images.device() == labels.device(), subject, "images and labels on different devices");
  require(num_classes > 0, subject, "num_classes must be positive");
  require(static_cast<int64_t>(class_names.size()) == num_classes, subject,
          std::to_string(class_names.size()) + " class names for " + std::to_string(num_classes) +
              " classes");
  if (labels.numel() > 0) {
    const int64_t lo = labels.min().item<int64_t>();
    const int64_t hi = labels.max().item<int64_t>();
    require(lo >= 0 && hi < num_classes, subject,
            "labels span [" + std::to_string(lo) + ", " + std::to_string(hi) + "], outside [0, " +
                std::to_string(num_classes) + ")");
  }
}

Dataset subset(const Dataset& ds, const torch::Tensor& indices) {
  const std::string subject = subject_of(ds);
  require(indices.dim() == 1 && indices.scalar_type() == torch::kInt64, subject,
          "subset indices must be a 1-D int64 tensor");
  auto idx = indices.to(ds.images.device());
  if (idx.numel() > 0) {
    const int64_t lo = idx.min().item<int64_t>();
    const int64_t hi = idx.max().item<int64_t>();
    require(lo >= 0 && hi < ds.size(), subject,
            "subset indices span [" + std::to_string(lo) + ", " + std::to_string(hi) +
                "], outside [0, " + std::to_string(ds.size()) + ")");
  }
  Dataset out = ds;
  out.images = ds.images.index_select(0, idx);  // (n, C, H, W)
  out.labels = ds.labels.index_select(0, idx.to(ds.labels.device()));
  return out;
}

Dataset select_classes(const Dataset& ds, const std::vector<int64_t>& classes) {
  const std::string subject = subject_of(ds);
  require(!classes.empty(), subject, "select_classes needs at least one class");
  std::set<int64_t> seen;
  // mapping[old label] = new label, or -1 for a dropped class.
  std::vector<int64_t> mapping(static_cast<size_t>(ds.num_classes), -1);
  std::vector<std::string> names;
  for (size_t i = 0; i < classes.size(); ++i) {
    const int64_t c = classes[i];
    require(c >= 0 && c < ds.num_classes, subject,
            "class " + std::to_string(c) + " is out of range [0, " +
                std::to_string(ds.num_classes) + ")",
            "list class indices between 0 and " + std::to_string(ds.num_classes - 1));
    require(seen.insert(c).second, subject, "class " + std::to_string(c) + " is listed twice");
    mapping[static_cast<size_t>(c)] = static_cast<int64_t>(i);
    names.push_back(c < static_cast<int64_t>(ds.class_names.size())
                        ? ds.class_names[static_cast<size_t>(c)]
                        : std::to_string(c));
  }
  auto map = torch::tensor(mapping, torch::kInt64).to(ds.labels.device());
  auto relabelled = map.index_select(0, ds.labels);  // (N), -1 for dropped samples
  auto keep = (relabelled >= 0).nonzero().squeeze(1);

  Dataset out;
  out.name = ds.name;
  out.images = ds.images.index_select(0, keep.to(ds.images.device()));
  out.labels = relabelled.index_select(0, keep);
  out.num_classes = static_cast<int64_t>(classes.size());
  out.class_names = std::move(names);
  return out;
}

Split stratified_split(const torch::Tensor& labels, int64_t num_classes, double val_fraction,
                       uint64_t seed) {
  const std::string subject = "stratified_split";
  require(labels.dim() == 1 && labels.scalar_type() == torch::kInt64, subject,
          "labels must be a 1-D int64 tensor");
  require(val_fraction >= 0.0 && val_fraction <= 1.0, subject,
          "val_fraction " + std::to_string(val_fraction) + " is outside [0, 1]");
  require(num_classes > 0, subject, "num_classes must be positive");
  auto y = labels.to(torch::kCPU);
  if (y.numel() > 0) {
    require(y.min().item<int64_t>() >= 0 && y.max().item<int64_t>() < num_classes, subject,
            "labels outside [0, " + std::to_string(num_classes) + ")");
  }

  // One generator for the whole split, consumed class by class in label order.
  auto gen = make_generator(seed);
  std::vector<torch::Tensor> train;
  std::vector<torch::Tensor> val;
  for (int64_t c = 0; c < num_classes; ++c) {
    auto members = (y == c).nonzero().squeeze(1);  // (n_c), ascending
    const int64_t n = members.size(0);
    const auto n_val = static_cast<int64_t>(std::llround(val_fraction * static_cast<double>(n)));
    auto perm = torch::randperm(n, gen, torch::kInt64);
    auto shuffled = members.index_select(0, perm);
    val.push_back(shuffled.slice(0, 0, n_val));
    train.push_back(shuffled.slice(0, n_val, n));
  }
  Split split;
  split.train = std::get<0>(torch::cat(train).sort());
  split.val = std::get<0>(torch::cat(val).sort());
  return split;
}

}  // namespace normlab::data
