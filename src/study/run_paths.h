// The layout of a run's directory inside a study directory: DIR/runs/<first 16 hex digits of
// the config hash>/ holds the epoch checkpoint, the best weights (early stopping) and the
// final weights. The one place these names are spelled.
#pragma once

#include <string>

namespace normlab::study {

struct RunPaths {
  std::string dir;
  static RunPaths of(const std::string& out_dir, const std::string& config_hash) {
    return {out_dir + "/runs/" + config_hash.substr(0, 16)};
  }
  std::string checkpoint() const { return dir + "/checkpoint.pt"; }
  std::string best_weights() const { return dir + "/best.pt"; }
  std::string final_weights() const { return dir + "/model.safetensors"; }
};

}  // namespace normlab::study
