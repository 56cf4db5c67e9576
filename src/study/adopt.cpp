#include "study/adopt.h"

#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "study/config.h"
#include "study/run_paths.h"

namespace normlab::study {
namespace fs = std::filesystem;

RunAdopter::RunAdopter(store::Store& db, std::string out_dir)
    : db_(db), out_dir_(std::move(out_dir)) {}

bool RunAdopter::adopt(const RunPlan& run) {
  const std::string text = canonical_text(run.config);
  const std::string hash = sha256_hex(text);
  if (db_.find_run(hash)) return false;
  for (const auto& record : db_.runs()) {
    if (record.name != run.name || record.config_hash == hash) continue;
    Json upgraded = default_run_config();
    try {
      Json stored = Json::parse(record.config_json);
      if (stored.contains("model") && stored["model"].contains("weights")) {
        auto it = renamed_refs_.find(stored["model"]["weights"].get<std::string>());
        if (it != renamed_refs_.end()) stored["model"]["weights"] = it->second;
      }
      merge_config(upgraded, stored, "stored run '" + record.name + "'");
    } catch (const std::exception&) {
      continue;  // a key this version no longer has: not the same run
    }
    if (canonical_text(upgraded) != text) continue;
    const RunPaths from = RunPaths::of(out_dir_, record.config_hash);
    const RunPaths to = RunPaths::of(out_dir_, hash);
    if (fs::exists(from.dir) && !fs::exists(to.dir)) fs::rename(from.dir, to.dir);
    db_.rekey_run(record.id, text);
    if (run.role == "pretrain") {
      renamed_refs_["pretrain:" + record.config_hash.substr(0, 16)] =
          "pretrain:" + hash.substr(0, 16);
    }
    log::info(run.name, ": continues the run an older normlab recorded (config ",
              record.config_hash.substr(0, 16), " -> ", hash.substr(0, 16),
              ", keys added since take their defaults)");
    return true;
  }
  return false;
}

}  // namespace normlab::study
