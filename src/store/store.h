// The study store: one SQLite database (WAL mode) per study directory, holding every run's
// fully resolved config (JSON + hash), status, per-step and per-epoch scalars and small
// artifacts (confusion matrices, landscapes as JSON). Writers group an epoch's records in
// one transaction; the report is a read-only client.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

struct sqlite3;

namespace normlab::store {

enum class RunStatus { kPending, kRunning, kComplete, kFailed };
std::string to_string(RunStatus status);
RunStatus run_status_from_string(const std::string& text);

struct RunRecord {
  int64_t id = 0;
  std::string name;         // human-readable, e.g. "norm=bn,clip=0.1,seed=1"
  std::string group;        // configuration label without the seed (for mean/std over seeds)
  std::string config_json;  // fully resolved config
  std::string config_hash;  // sha256 of config_json
  int64_t seed = 0;
  RunStatus status = RunStatus::kPending;
  std::string error;  // last failure message, if any
  double wall_seconds = 0;
};

struct ScalarPoint {
  std::string name;  // e.g. "train/loss", "grad_norm/features.3.0.weight"
  int64_t step = 0;  // global step (per-step series) or epoch (per-epoch series)
  double value = 0;
};

struct OpenOptions {
  bool read_only = false;
  bool create = true;  // create the database if missing (ignored when read_only)
};

class Store {
 public:
  // Opens (or creates) `path`. Refuses, with an Error naming the path, a file that is not a
  // normlab store (not SQLite, or SQLite without normlab's schema/version) — such a file is
  // never modified.
  static std::unique_ptr<Store> open(const std::string& path, const OpenOptions& options = {});
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }

  // Returns the run with this config hash, inserting it as pending if new.
  RunRecord upsert_run(const std::string& name, const std::string& group,
                       const std::string& config_json, int64_t seed);
  std::optional<RunRecord> find_run(const std::string& config_hash) const;
  std::vector<RunRecord> runs() const;
  void set_status(int64_t run_id, RunStatus status, const std::string& error = "",
                  double wall_seconds = 0);

  // Per-step series (e.g. gradient norms) and per-epoch series (metrics), written in one
  // transaction together with the run's progress marker `epochs_done`.
  void write_epoch(int64_t run_id, int64_t epoch, const std::vector<ScalarPoint>& step_scalars,
                   const std::vector<ScalarPoint>& epoch_scalars);
  // Scalars of one run; kind "step" or "epoch". Empty name_prefix = all.
  std::vector<ScalarPoint> scalars(int64_t run_id, const std::string& kind,
                                   const std::string& name_prefix = "") const;
  int64_t epochs_done(int64_t run_id) const;
  // Drops records of epochs >= from_epoch (used when a run restarts from a checkpoint).
  void truncate_from_epoch(int64_t run_id, int64_t from_epoch);

  // Small JSON artifacts per run (confusion matrix, loss landscape, final metrics).
  void put_artifact(int64_t run_id, const std::string& name, const nlohmann::json& value);
  std::optional<nlohmann::json> artifact(int64_t run_id, const std::string& name) const;

  // Study-level key/value metadata (spec text, study name, normlab version).
  void set_meta(const std::string& key, const std::string& value);
  std::optional<std::string> meta(const std::string& key) const;
  // Every metadata entry, ordered by key (the report prints them).
  std::vector<std::pair<std::string, std::string>> all_meta() const;

  // Schema version kept in `PRAGMA user_version`; `PRAGMA application_id` marks the file as
  // a normlab store so that foreign SQLite databases are recognised and refused.
  static constexpr int kSchemaVersion = 1;
  static constexpr int32_t kApplicationId = 0x4E4C4142;  // "NLAB"

 private:
  Store(std::string path, sqlite3* db);
  void require_writable(const char* operation) const;

  std::string path_;
  sqlite3* db_;
  bool read_only_ = false;
};

}  // namespace normlab::store
