// Runs recorded by an older normlab, adopted by a newer one. A run's identity is the hash of
// its fully resolved config, so every config key a newer version adds (with a default that
// reproduces the old behaviour: the rule for new keys) changes every hash, and an interrupted
// study resumed after an upgrade would start over, its store holding old and new runs of the
// same configuration and seed side by side. Before registering its runs, the runner asks for
// each planned run without a record: is there a record of the same name whose stored config,
// with the current defaults filled in (and references to adopted pretrainings rewritten),
// is this config? Then that record is rekeyed to the new hash and its directory renamed, and
// the run resumes (or is skipped when complete) as if nothing had changed.
#pragma once

#include <map>
#include <string>

#include "store/store.h"
#include "study/spec.h"

namespace normlab::study {

class RunAdopter {
 public:
  RunAdopter(store::Store& db, std::string out_dir);

  // Adopts the record that `run` continues, if any; returns true when it did. Pretraining
  // runs first: runs that start from them are matched with the rewritten references.
  bool adopt(const RunPlan& run);

 private:
  store::Store& db_;
  std::string out_dir_;
  std::map<std::string, std::string> renamed_refs_;  // "pretrain:<old16>" -> "pretrain:<new16>"
};

}  // namespace normlab::study
