#include "study/weights.h"

#include <filesystem>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "io/download.h"
#include "models/pretrained.h"
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

std::string listing(const char* what, const std::vector<std::string>& names) {
  if (names.empty()) return "";
  std::string out = "\n  " + std::to_string(names.size()) + " " + what + ": ";
  for (size_t i = 0; i < names.size() && i < 8; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 8) out += ", ...";
  return out;
}

}  // namespace

LoadReport apply_state_dict(torch::nn::Module& model, const io::StateDict& dict,
                            const std::vector<std::string>& skip, bool strict,
                            const std::string& source) {
  LoadReport report;
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (auto& p : model.named_parameters()) targets.emplace_back(p.key(), p.value());
  for (auto& b : model.named_buffers()) targets.emplace_back(b.key(), b.value());
  std::set<std::string> model_names;
  for (const auto& [name, t] : targets) model_names.insert(name);

  torch::NoGradGuard no_grad;
  std::vector<std::pair<torch::Tensor, const torch::Tensor*>> copies;
  for (auto& [name, target] : targets) {
    if (skipped(name, skip)) {
      report.skipped.push_back(name);
      continue;
    }
    const torch::Tensor* src = dict.find(name);
    if (src == nullptr) {
      report.missing.push_back(name);
    } else if (src->sizes() != target.sizes()) {
      report.mismatched.push_back(name + ": file " + shape_text(*src) + " vs model " +
                                  shape_text(target));
    } else {
      copies.emplace_back(target, src);
      report.loaded.push_back(name);
    }
  }
  for (const auto& [name, t] : dict.items) {
    if (model_names.count(name) == 0 && !skipped(name, skip)) report.unexpected.push_back(name);
  }
  bool clean = report.missing.empty() && report.unexpected.empty() && report.mismatched.empty();
  if (strict && !clean) {
    throw Error(source,
                "does not match the model" + listing("missing", report.missing) +
                    listing("unexpected", report.unexpected) +
                    listing("with other shapes", report.mismatched),
                "check model.backbone and its options; add module paths replaced on purpose to "
                "model.weights_skip (e.g. [\"head\"])");
  }
  // Copy only after every check passed: a refused file leaves the model as it was.
  for (auto& [target, src] : copies) target.copy_(src->to(target.device(), target.scalar_type()));
  return report;
}

std::string resolve_weights(const std::string& ref, const std::string& out_dir) {
  if (ref.rfind("pretrain:", 0) == 0) {
    std::string path = out_dir + "/runs/" + ref.substr(9) + "/model.safetensors";
    require(std::filesystem::exists(path), "model.weights '" + ref + "'",
            "the pretraining run has not produced " + path,
            "run the study again: the pretraining run comes first");
    return path;
  }
  if (ref.rfind("torchvision:", 0) == 0) {
    const auto& w = models::find_pretrained(ref);
    return io::ensure_file(w.url, w.sha256, models::pretrained_cache_path(w));
  }
  require(std::filesystem::exists(ref), "model.weights '" + ref + "'", "file not found",
          "give a .pth or .safetensors path, or a registered id such as "
          "torchvision:mobilenet_v2:IMAGENET1K_V1");
  return ref;
}

LoadReport load_weights(torch::nn::Module& model, const std::string& ref,
                        const std::vector<std::string>& skip, const std::string& out_dir) {
  std::string path = resolve_weights(ref, out_dir);
  io::StateDict dict = io::load_state_dict(path);
  LoadReport r = apply_state_dict(model, dict, skip, /*strict=*/true, path);
  log::debug("loaded ", r.loaded.size(), " tensors from ", path, " (", r.skipped.size(),
             " skipped)");
  return r;
}

void save_final_weights(torch::nn::Module& model, const std::string& path) {
  io::StateDict dict;
  for (const auto& p : model.named_parameters()) {
    dict.items.emplace_back(p.key(), p.value().detach().cpu().contiguous());
  }
  for (const auto& b : model.named_buffers()) {
    dict.items.emplace_back(b.key(), b.value().cpu().contiguous());
  }
  io::save_safetensors(path, dict);
}

}  // namespace normlab::study
