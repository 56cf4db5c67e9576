#include "study/weights.h"

#include <filesystem>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "train/params.h"

namespace normlab::study {
namespace {

std::string shape_text(const torch::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

bool skipped(const std::string& name, const std::vector<std::string>& skip) {
  for (const auto& s : skip) {
    if (train::pattern_matches(s, name)) return true;
  }
  return false;
}

}  // namespace

void save_final_weights(torch::nn::Module& model, const std::string& path) {
  torch::serialize::OutputArchive archive;
  for (const auto& p : model.named_parameters()) archive.write(p.key(), p.value().detach().cpu());
  for (const auto& b : model.named_buffers()) archive.write(b.key(), b.value().cpu(), true);
  std::ostringstream os;
  archive.save_to(os);
  write_file_atomic(path, os.str());
}

void load_weights(torch::nn::Module& model, const std::string& ref,
                  const std::vector<std::string>& skip, const std::string& out_dir) {
  std::string path = ref;
  if (ref.rfind("pretrain:", 0) == 0) {
    path = out_dir + "/runs/" + ref.substr(9) + "/model.pt";
    require(std::filesystem::exists(path), "model.weights '" + ref + "'",
            "the pretraining run has not produced " + path,
            "run the study again: the pretraining run comes first");
  }
  require(std::filesystem::exists(path), "model.weights '" + ref + "'", "file not found");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw Error(path, std::string("not a normlab weights file: ") + e.what_without_backtrace());
  }
  std::set<std::string> file_keys;
  for (const auto& k : archive.keys()) file_keys.insert(k);

  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  auto load_one = [&](const std::string& name, torch::Tensor& target, bool is_buffer) {
    if (skipped(name, skip)) return;
    require(file_keys.count(name) > 0, path, "missing key '" + name + "'",
            "add its module path to model.weights_skip if it is replaced on purpose");
    torch::Tensor t;
    archive.read(name, t, is_buffer);
    require(t.sizes() == target.sizes(), path,
            "shape mismatch for '" + name + "': file has " + shape_text(t) + ", model has " +
                shape_text(target),
            "add its module path to model.weights_skip if it is replaced on purpose");
    target.copy_(t);
    used.insert(name);
  };
  for (auto& p : model.named_parameters()) load_one(p.key(), p.value(), false);
  for (auto& b : model.named_buffers()) load_one(b.key(), b.value(), true);
  for (const auto& k : file_keys) {
    require(used.count(k) > 0 || skipped(k, skip), path,
            "unexpected key '" + k + "' (the model has no such parameter or buffer)",
            "check model.backbone/model.width against the model that wrote the file");
  }
}

}  // namespace normlab::study
