#include "models/norm_slots.h"

#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/path_pattern.h"

namespace normlab::models {
NormFactory::NormFactory(std::vector<std::pair<std::string, std::string>> overrides,
                         nn::NormOptions options, std::string alternate)
    : overrides_(std::move(overrides)),
      used_(overrides_.size(), false),
      options_(std::move(options)),
      alternate_(std::move(alternate)) {}

torch::nn::AnyModule NormFactory::make(const std::string& path, const std::string& spec,
                                       int64_t channels, nn::NormInput input) {
  slots_.push_back(path);
  const std::string* chosen = &spec;
  if (!alternate_.empty() && path.rfind("head", 0) != 0) {
    const std::string kind = nn::parse_norm(spec).kind;
    if ((kind == "bn" || kind == "dmbn") && ++batch_slots_ % 2 == 0) chosen = &alternate_;
  }
  for (size_t i = 0; i < overrides_.size(); ++i) {
    if (path_matches(overrides_[i].first, path)) {
      chosen = &overrides_[i].second;
      used_[i] = true;
    }
  }
  return nn::make_norm(*chosen, channels, input, options_);
}

void NormFactory::check_every_override_used() const {
  require(alternate_.empty() || batch_slots_ >= 2, "model.bn_bfn = \"alternate\"",
          "the backbone has " + std::to_string(batch_slots_) +
              " BatchNorm slot(s), so no second one to replace by '" + alternate_ + "'",
          "BN-BFN alternates BatchNorm with a batch-free norm: use model.norm = \"bn\"");
  for (size_t i = 0; i < overrides_.size(); ++i) {
    if (used_[i]) continue;
    std::string examples;
    for (size_t j = 0; j < slots_.size() && j < 6; ++j) {
      examples += (examples.empty() ? "" : ", ") + slots_[j];
    }
    if (slots_.size() > 6) examples += ", ... (" + std::to_string(slots_.size()) + " in all)";
    throw Error("norm override '" + overrides_[i].first + "'", "matches no norm slot of the model",
                slots_.empty() ? "this model has no norm slots"
                               : "norm slots are module paths such as " + examples);
  }
}

}  // namespace normlab::models
