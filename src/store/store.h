// The study store: one SQLite database (WAL mode) per study directory, holding every run's
// fully resolved config (JSON + hash), status, and the typed records of store/records.h:
// scalar series (one row per series per epoch, values packed in blobs), histograms (bin edges
// deduplicated across epochs and runs), surfaces and matrices (JSON, the records' one
// serialised form). Writers group an epoch's records in one transaction; the report is a
// read-only client. A schema-1 store is migrated in place on its first writable open.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/records.h"

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

struct OpenOptions {
  bool read_only = false;
  bool create = true;  // create the database if missing (ignored when read_only)
};

class Store {
 public:
  // Opens (or creates) `path`. Refuses, with an Error naming the path, a file that is not a
  // normlab store (not SQLite, or SQLite without normlab's schema/version) — such a file is
  // never modified — and a store newer than this binary.
  // A schema-1 store is migrated to schema 2 in one transaction on a writable open (on any
  // failure the file stays a schema-1 store). A read-only open never writes: it migrates a
  // copy of the file in memory and reads that.
  static std::unique_ptr<Store> open(const std::string& path, const OpenOptions& options = {});
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }

  // Returns the run with this config hash, inserting it as pending if new.
  RunRecord upsert_run(const std::string& name, const std::string& group,
                       const std::string& config_json, int64_t seed);
  std::optional<RunRecord> find_run(const std::string& config_hash) const;
  // Replaces a run's config (and so its hash), keeping its id, status and records: a run an
  // older normlab recorded, continued by a newer one (study/adopt.h). Throws Error when
  // another run already has that config.
  void rekey_run(int64_t run_id, const std::string& config_json);
  std::vector<RunRecord> runs() const;
  void set_status(int64_t run_id, RunStatus status, const std::string& error = "",
                  double wall_seconds = 0);

  // Everything epoch `epoch` of a run produced, in one transaction together with the run's
  // progress marker: records of epochs >= epoch are dropped first when the run had already
  // passed it (a rewrite replaces, never duplicates), and epochs_done becomes epoch + 1.
  // Every histogram, surface and matrix is validated first; nothing is written if one is
  // invalid (Error naming the record).
  void write_epoch(int64_t run_id, int64_t epoch, const EpochRecords& records);
  // The same inserts, in one transaction, without touching epochs_done and without dropping
  // anything: for evaluations written after the last epoch's commit (test metrics, final
  // confusion matrices, landscapes). A surface or matrix with the same (run, name, epoch)
  // replaces the stored one; scalar points join the series' row of that epoch.
  void put_records(int64_t run_id, int64_t epoch, const EpochRecords& records);

  // One run's scalar points on `axis`, ordered by name then step; empty name_prefix = all.
  std::vector<ScalarPoint> scalars(int64_t run_id, Axis axis,
                                   const std::string& name_prefix = "") const;
  // The same with the axis by name ("step" or "epoch"), as callers and tests spell it.
  std::vector<ScalarPoint> scalars(int64_t run_id, const std::string& axis,
                                   const std::string& name_prefix = "") const;
  // One run's histograms whose name starts with name_prefix, ordered by name, axis, step.
  std::vector<HistogramPoint> histograms(int64_t run_id, const std::string& name_prefix = "") const;
  // The distinct histogram names of a run, sorted (reads no counts).
  std::vector<std::string> histogram_names(int64_t run_id) const;
  // Surfaces / matrices of a run named `name` (empty = all), ordered by name, epoch.
  std::vector<SurfaceRecord> surfaces(int64_t run_id, const std::string& name = "") const;
  std::vector<MatrixRecord> matrices(int64_t run_id, const std::string& name = "") const;

  int64_t epochs_done(int64_t run_id) const;
  // Drops series, histograms, surfaces and matrices of epochs >= from_epoch (used when a
  // run restarts from a checkpoint) and lowers epochs_done to from_epoch.
  void truncate_from_epoch(int64_t run_id, int64_t from_epoch);

  // Study-level key/value metadata (spec text, study name, normlab version).
  void set_meta(const std::string& key, const std::string& value);
  std::optional<std::string> meta(const std::string& key) const;
  // Every metadata entry, ordered by key (the report prints them).
  std::vector<std::pair<std::string, std::string>> all_meta() const;

  // Schema version kept in `PRAGMA user_version`; `PRAGMA application_id` marks the file as
  // a normlab store so that foreign SQLite databases are recognised and refused.
  // Version 2: typed records (series blobs, histograms, surfaces, matrices); version 1 kept
  // one row per scalar and untyped JSON artifacts, and is migrated on open.
  static constexpr int kSchemaVersion = 2;
  static constexpr int32_t kApplicationId = 0x4E4C4142;  // "NLAB"

 private:
  Store(std::string path, sqlite3* db);
  void require_writable(const char* operation) const;
  // The inserts shared by write_epoch and put_records, inside the caller's transaction.
  void insert_records(int64_t run_id, int64_t epoch, const EpochRecords& records);

  std::string path_;
  sqlite3* db_;
  bool read_only_ = false;
};

}  // namespace normlab::store
