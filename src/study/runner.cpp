#include "study/runner.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/runtime.h"
#include "store/store.h"
#include "study/adopt.h"
#include "study/lockstep.h"

namespace normlab::study {
namespace fs = std::filesystem;

StudyResult run_study(const Plan& plan, const RunnerOptions& options) {
  auto t0 = std::chrono::steady_clock::now();
  fs::create_directories(options.out_dir);
  auto db = store::Store::open(options.out_dir + "/study.db");
  int threads = apply_threads(options.threads);
  db->set_meta("study_name", plan.study_name);
  if (!options.spec_text.empty()) db->set_meta("spec", options.spec_text);
  db->set_meta("threads", std::to_string(threads));
  db->set_meta("torch_version", TORCH_VERSION);
  if (!plan.pretrains.empty()) {
    nlohmann::json groups = nlohmann::json::array();
    for (const auto& p : plan.pretrains) {
      if (std::find(groups.begin(), groups.end(), p.group) == groups.end())
        groups.push_back(p.group);
    }
    db->set_meta("auxiliary_groups", groups.dump());
  }

  StudyResult result;
  EngineTiming timing;
  RunAdopter adopter(*db, options.out_dir);
  auto register_run = [&](const RunPlan& run) {
    adopter.adopt(run);
    auto record = db->upsert_run(run.name, run.group, canonical_text(run.config),
                                 run.config.at("seed").get<int64_t>());
    if (record.status == store::RunStatus::kComplete) ++result.skipped;
    return record;
  };
  // Lockstep groups in order of first appearance: the pretraining runs first, then the runs.
  auto run_all = [&](const std::vector<RunPlan>& runs, const std::set<std::string>& blocked) {
    std::vector<std::string> keys;
    std::map<std::string, std::vector<GroupMember>> groups;
    for (const auto& run : runs) {
      auto record = register_run(run);
      if (record.status == store::RunStatus::kComplete) continue;
      const std::string weights = run.config.at("model").at("weights").get<std::string>();
      if (blocked.count(weights)) {
        // A run cannot start from weights that were never trained.
        const std::string why = "its pretraining (" + weights + ") failed";
        db->set_status(record.id, store::RunStatus::kFailed, why);
        ++result.failed;
        result.failures.push_back(run.name + ": " + why);
        continue;
      }
      std::string key = group_key(run.config);
      if (groups.find(key) == groups.end()) keys.push_back(key);
      groups[key].push_back({&run, record});
    }
    for (const auto& key : keys) run_group(groups[key], *db, options, result, timing);
  };
  run_all(plan.pretrains, {});
  std::set<std::string> failed_pretraining;
  for (const auto& p : plan.pretrains) {
    auto record = db->find_run(sha256_hex(canonical_text(p.config)));
    if (!record || record->status != store::RunStatus::kComplete) {
      failed_pretraining.insert("pretrain:" + sha256_hex(canonical_text(p.config)).substr(0, 16));
    }
  }
  run_all(plan.runs, failed_pretraining);
  db->set_meta("engine_timing", timing.to_json().dump());
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace normlab::study
