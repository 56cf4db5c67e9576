#include "study/runner.h"

#include <chrono>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "store/store.h"
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
  if (plan.pretrain) {
    db->set_meta("auxiliary_groups", nlohmann::json::array({plan.pretrain->group}).dump());
  }

  StudyResult result;
  EngineTiming timing;
  auto register_run = [&](const RunPlan& run) {
    auto record = db->upsert_run(run.name, run.group, canonical_text(run.config),
                                 run.config.at("seed").get<int64_t>());
    if (record.status == store::RunStatus::kComplete) ++result.skipped;
    return record;
  };
  if (plan.pretrain) {
    auto record = register_run(*plan.pretrain);
    if (record.status != store::RunStatus::kComplete) {
      run_group({{&*plan.pretrain, record}}, *db, options, result, timing);
    }
  }
  // Later runs cannot start from weights that were never trained.
  if (result.failed == 0) {
    // Lockstep groups in order of first appearance in the plan.
    std::vector<std::string> keys;
    std::map<std::string, std::vector<GroupMember>> groups;
    for (const auto& run : plan.runs) {
      auto record = register_run(run);
      if (record.status == store::RunStatus::kComplete) continue;
      std::string key = group_key(run.config);
      if (groups.find(key) == groups.end()) keys.push_back(key);
      groups[key].push_back({&run, record});
    }
    for (const auto& key : keys) run_group(groups[key], *db, options, result, timing);
  }
  db->set_meta("engine_timing", timing.to_json().dump());
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace normlab::study
