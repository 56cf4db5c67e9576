#include "store/store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <unordered_map>
#include <utility>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "store/blob.h"
#include "store/migrate_v1.h"
#include "store/schema.h"
#include "store/sqlite.h"

namespace normlab::store {
namespace {

using namespace detail;  // store/sqlite.h, blob.h, schema.h, migrate_v1.h

using nlohmann::json;

// busy_timeout: how long a writer waits for another process's transaction before giving up.
// Epoch transactions take milliseconds, so 5 s only expires when something is stuck.
constexpr int kBusyTimeoutMs = 5000;

// The columns of RunRecord, in the order read_run expects.
constexpr const char* kRunColumns =
    "id, name, grp, config_json, config_hash, seed, status, error, wall_seconds";

// [prefix, upper) selects exactly the names starting with prefix, through an index on name:
// upper is prefix with its last byte below 0xff incremented (empty = no upper bound).
std::string prefix_upper_bound(const std::string& prefix) {
  std::string upper = prefix;
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xff) upper.pop_back();
  if (!upper.empty()) {
    upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
  }
  return upper;
}

// ---- writing records (inside a caller's transaction) ----

// Drops every record of epochs >= from_epoch, and bin edges no histogram uses any more.
void drop_from_epoch(const std::string& path, sqlite3* db, int64_t run_id, int64_t from_epoch) {
  for (const char* sql : {"DELETE FROM series WHERE run_id = ?1 AND epoch >= ?2",
                          "DELETE FROM artifacts WHERE run_id = ?1 AND epoch >= ?2"}) {
    Statement drop(path, db, sql);
    drop.bind(1, run_id).bind(2, from_epoch).run();
  }
  Statement drop(path, db, "DELETE FROM histograms WHERE run_id = ?1 AND epoch >= ?2");
  drop.bind(1, run_id).bind(2, from_epoch).run();
  if (sqlite3_changes(db) > 0) {
    exec(path, db,
         "DELETE FROM bin_edges WHERE id NOT IN (SELECT DISTINCT edges_id FROM histograms)");
  }
}

// Appends `points` to the row of (run, axis, name, epoch), creating it if missing; a row's
// points are kept sorted by step (stable: equal steps keep their writing order).
class SeriesWriter {
 public:
  SeriesWriter(const std::string& path, sqlite3* db, int64_t run_id, int64_t epoch)
      : path_(path),
        find_(path, db,
              "SELECT rowid, steps, vals FROM series "
              "WHERE run_id = ?1 AND axis = ?2 AND name = ?3 AND epoch = ?4"),
        insert_(path, db,
                "INSERT INTO series (run_id, axis, name, epoch, steps, vals) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
        update_(path, db, "UPDATE series SET steps = ?2, vals = ?3 WHERE rowid = ?1") {
    find_.bind(1, run_id).bind(4, epoch);
    insert_.bind(1, run_id).bind(4, epoch);
  }

  void write(Axis axis, const std::vector<ScalarPoint>& points) {
    // Group by name, in order of first appearance; one row per name.
    std::unordered_map<std::string, size_t> index;
    std::vector<std::pair<std::string, std::vector<std::pair<int64_t, double>>>> groups;
    for (const auto& p : points) {
      auto [it, inserted] = index.emplace(p.name, groups.size());
      if (inserted) groups.push_back({p.name, {}});
      groups[it->second].second.emplace_back(p.step, p.value);
    }
    const std::string axis_text = to_string(axis);
    for (auto& [name, pts] : groups) write_one(axis_text, name, std::move(pts));
  }

 private:
  void write_one(const std::string& axis, const std::string& name,
                 std::vector<std::pair<int64_t, double>> points) {
    find_.bind(2, axis).bind(3, name);
    bool exists = find_.step();
    int64_t rowid = 0;
    if (exists) {
      rowid = find_.column_int(0);
      std::string what = "series '" + name + "'";
      auto steps = decode_int64s(find_.column_blob(1), path_, what);
      auto vals = decode_doubles(find_.column_blob(2), path_, what);
      require(steps.size() == vals.size(), path_, what + ": steps and values differ in length");
      std::vector<std::pair<int64_t, double>> merged;
      merged.reserve(steps.size() + points.size());
      for (size_t i = 0; i < steps.size(); ++i) merged.emplace_back(steps[i], vals[i]);
      merged.insert(merged.end(), points.begin(), points.end());
      points = std::move(merged);
    }
    find_.reset();
    auto by_step = [](const auto& a, const auto& b) { return a.first < b.first; };
    if (!std::is_sorted(points.begin(), points.end(), by_step)) {
      std::stable_sort(points.begin(), points.end(), by_step);
    }
    std::vector<int64_t> steps;
    std::vector<double> vals;
    steps.reserve(points.size());
    vals.reserve(points.size());
    for (const auto& [s, v] : points) {
      steps.push_back(s);
      vals.push_back(v);
    }
    if (exists) {
      update_.bind(1, rowid).bind_blob(2, encode_int64s(steps)).bind_blob(3, encode_doubles(vals));
      update_.run();
      update_.reset();
    } else {
      insert_.bind(2, axis).bind(3, name);
      insert_.bind_blob(5, encode_int64s(steps)).bind_blob(6, encode_doubles(vals)).run();
      insert_.reset();
    }
  }

  const std::string& path_;
  Statement find_, insert_, update_;
};

class HistogramWriter {
 public:
  HistogramWriter(const std::string& path, sqlite3* db, int64_t run_id, int64_t epoch)
      : path_(path),
        add_edges_(path, db,
                   "INSERT INTO bin_edges (edges) VALUES (?1) ON CONFLICT (edges) DO NOTHING"),
        find_edges_(path, db, "SELECT id FROM bin_edges WHERE edges = ?1"),
        insert_(path, db,
                "INSERT INTO histograms (run_id, name, axis, step, epoch, edges_id, scale, "
                "counts, count, nonfinite, min, max, mean, std) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT (run_id, name, axis, step) DO "
                "UPDATE SET epoch = excluded.epoch, edges_id = excluded.edges_id, scale = "
                "excluded.scale, counts = excluded.counts, count = excluded.count, nonfinite = "
                "excluded.nonfinite, min = excluded.min, max = excluded.max, mean = "
                "excluded.mean, std = excluded.std") {
    insert_.bind(1, run_id).bind(5, epoch);
  }

  void write(const HistogramPoint& p) {
    const Histogram& h = p.hist;
    insert_.bind(2, p.name).bind(3, to_string(p.axis)).bind(4, p.step);
    insert_.bind(6, edges_id(h.edges)).bind(7, h.scale).bind_blob(8, encode_int64s(h.counts));
    insert_.bind(9, h.count).bind(10, h.nonfinite).bind(11, h.min).bind(12, h.max);
    insert_.bind(13, h.mean).bind(14, h.std).run();
    insert_.reset();
  }

 private:
  int64_t edges_id(const std::vector<double>& edges) {
    std::string blob = encode_doubles(edges);
    auto it = ids_.find(blob);
    if (it != ids_.end()) return it->second;
    add_edges_.bind_blob(1, blob).run();
    add_edges_.reset();
    find_edges_.bind_blob(1, blob);
    bool found = find_edges_.step();
    int64_t id = found ? find_edges_.column_int(0) : 0;
    find_edges_.reset();
    require(found, path_, "bin edges vanished after insert");
    ids_.emplace(std::move(blob), id);
    return id;
  }

  const std::string& path_;
  Statement add_edges_, find_edges_, insert_;
  std::map<std::string, int64_t> ids_;  // edges blob -> id, within this transaction
};

std::string record_what(const std::string& kind, const std::string& name, int64_t run_id,
                        int64_t epoch) {
  return kind + " '" + name + "' of " + run_text(run_id) + " (epoch " + std::to_string(epoch) + ")";
}

// Histograms, surfaces and matrices are checked before the transaction starts. Scalar names
// are checked by the series table's CHECK constraint (inside the transaction, which rolls
// back): validating 20k points up front would be the same check twice.
void validate_records(const std::string& path, int64_t run_id, int64_t epoch,
                      const EpochRecords& records) {
  for (const auto& h : records.histograms) {
    std::string what = path + ": " + record_what("histogram", h.name, run_id, epoch);
    require(!h.name.empty(), what, "empty histogram name");
    validate(h.hist, what);
  }
  for (const auto& s : records.surfaces) {
    std::string what = path + ": " + record_what("surface", s.name, run_id, epoch);
    require(!s.name.empty(), what, "empty surface name");
    validate(s.surface, what);
  }
  for (const auto& m : records.matrices) {
    std::string what = path + ": " + record_what("matrix", m.name, run_id, epoch);
    require(!m.name.empty(), what, "empty matrix name");
    validate(m.matrix, what);
  }
}

// ---- opening and migrating ----

enum class FileKind { kEmpty, kNormlab, kSchemaV1, kForeign };

// Classifies an open database by reading it only (no write happens before this returns).
// A file that is not SQLite fails here with "file is not a database".
FileKind classify(const std::string& path, sqlite3* db, std::string* description) {
  std::vector<std::string> tables;
  {
    Statement stmt(path, db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    while (stmt.step()) tables.push_back(stmt.column_text(0));
  }
  int64_t app_id = pragma_int(path, db, "PRAGMA application_id");
  int64_t version = pragma_int(path, db, "PRAGMA user_version");
  if (app_id == Store::kApplicationId) {
    if (version > Store::kSchemaVersion) {
      throw Error(path,
                  "store schema version " + std::to_string(version) +
                      " is newer than this normlab's (" + std::to_string(Store::kSchemaVersion) +
                      ")",
                  "use the normlab version that wrote this study, or a newer one");
    }
    if (version == Store::kSchemaVersion) return FileKind::kNormlab;
    if (version == 1) return FileKind::kSchemaV1;
  }
  if (tables.empty() && app_id == 0 && version == 0) return FileKind::kEmpty;
  std::string list;
  for (const auto& t : tables) list += (list.empty() ? "" : ", ") + t;
  *description = "a SQLite database but not a normlab store (application_id " +
                 std::to_string(app_id) + ", user_version " + std::to_string(version) +
                 ", tables: " + (list.empty() ? "none" : list) + ")";
  return FileKind::kForeign;
}

RunRecord read_run(const Statement& stmt) {
  RunRecord r;
  r.id = stmt.column_int(0);
  r.name = stmt.column_text(1);
  r.group = stmt.column_text(2);
  r.config_json = stmt.column_text(3);
  r.config_hash = stmt.column_text(4);
  r.seed = stmt.column_int(5);
  r.status = run_status_from_string(stmt.column_text(6));
  r.error = stmt.column_text(7);
  r.wall_seconds = stmt.column_double(8);
  return r;
}

json parse_artifact(const std::string& path, const std::string& text, const std::string& what) {
  auto parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  require(!parsed.is_discarded(), path, what + " is not valid JSON (the store is damaged)");
  return parsed;
}

}  // namespace

std::string to_string(RunStatus status) {
  switch (status) {
    case RunStatus::kPending:
      return "pending";
    case RunStatus::kRunning:
      return "running";
    case RunStatus::kComplete:
      return "complete";
    case RunStatus::kFailed:
      return "failed";
  }
  return "unknown";
}

RunStatus run_status_from_string(const std::string& text) {
  if (text == "pending") return RunStatus::kPending;
  if (text == "running") return RunStatus::kRunning;
  if (text == "complete") return RunStatus::kComplete;
  if (text == "failed") return RunStatus::kFailed;
  throw Error("run status '" + text + "'", "unknown status",
              "expected pending, running, complete or failed");
}

std::unique_ptr<Store> Store::open(const std::string& path, const OpenOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  bool exists = fs::exists(path, ec);
  if (!exists && (options.read_only || !options.create)) {
    throw Error(path, "no such study store",
                "check the path; a store is created by `normlab study`");
  }
  if (exists && fs::is_directory(path, ec)) {
    throw Error(path, "is a directory, not a study store", "pass the study.db file inside it");
  }

  int flags = options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (!options.read_only && options.create) flags |= SQLITE_OPEN_CREATE;
  DbHandle handle;
  if (sqlite3_open_v2(path.c_str(), &handle.db, flags, nullptr) != SQLITE_OK) {
    fail(path, handle.db, "cannot open study store");
  }
  sqlite3* db = handle.db;
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);

  // Look before touching: nothing below writes until the file is known to be ours or empty.
  int probe = sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
  if ((probe & 0xff) == SQLITE_NOTADB) {
    throw Error(path, "not a normlab study store (not a SQLite database); left untouched",
                "pass the study's study.db, or choose another path for a new study");
  }
  if (probe != SQLITE_OK) fail(path, db, "cannot read study store");
  std::string description;
  FileKind kind = classify(path, db, &description);
  if (kind == FileKind::kForeign) {
    throw Error(path, "is " + description + "; left untouched",
                "pass the study's study.db, or choose another path for a new study");
  }
  if (kind == FileKind::kEmpty && options.read_only) {
    throw Error(path, "empty database, not a normlab study store",
                "run `normlab study` first to create the store");
  }

  exec(path, db, "PRAGMA foreign_keys = ON");
  if (options.read_only) {
    if (kind == FileKind::kSchemaV1) {
      DbHandle memory;
      memory.db = migrated_copy_in_memory(path, db);
      sqlite3_close_v2(handle.release());
      handle.db = memory.release();
    }
  } else {
    // WAL lets the report and dashboard read while a study writes; synchronous=NORMAL is
    // the documented safe pairing with WAL (a power loss may drop the last commits, never
    // corrupt the file): https://www.sqlite.org/pragma.html#pragma_synchronous
    exec(path, db, "PRAGMA journal_mode = WAL");
    exec(path, db, "PRAGMA synchronous = NORMAL");
    if (kind == FileKind::kEmpty) {
      Transaction tx(path, db);
      // Another process may have created the schema while we waited for the lock.
      if (pragma_int(path, db, "PRAGMA user_version") == 0) {
        exec(path, db, kRunsTable);
        exec(path, db, kRecordTables);
        exec(path, db, ("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str());
        exec(path, db, ("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str());
      }
      tx.commit();
    } else if (kind == FileKind::kSchemaV1) {
      with_migration_hint([&] { migrate_v1(path, db); });
      compact(path, db);
    }
  }
  std::unique_ptr<Store> store(new Store(path, handle.release()));
  store->read_only_ = options.read_only;
  return store;
}

Store::Store(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}

Store::~Store() { sqlite3_close_v2(db_); }

void Store::require_writable(const char* operation) const {
  require(!read_only_, path_, std::string("cannot ") + operation + ": store opened read-only",
          "open it without read_only to write");
}

RunRecord Store::upsert_run(const std::string& name, const std::string& group,
                            const std::string& config_json, int64_t seed) {
  require_writable("add a run");
  std::string hash = sha256_hex(config_json);
  Transaction tx(path_, db_);
  Statement insert(path_, db_,
                   "INSERT INTO runs (name, grp, config_json, config_hash, seed) "
                   "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (config_hash) DO NOTHING");
  insert.bind(1, name).bind(2, group).bind(3, config_json).bind(4, hash).bind(5, seed).run();
  tx.commit();
  auto run = find_run(hash);
  require(run.has_value(), path_, "run with config hash " + hash + " vanished after insert");
  return *run;
}

void Store::rekey_run(int64_t run_id, const std::string& config_json) {
  require_writable("rekey a run");
  const std::string hash = sha256_hex(config_json);
  require(!find_run(hash).has_value(), path_,
          "cannot rekey run " + std::to_string(run_id) + ": another run has config " +
              hash.substr(0, 16));
  Statement stmt(path_, db_,
                 "UPDATE runs SET config_json = ?2, config_hash = ?3, "
                 "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1");
  stmt.bind(1, run_id).bind(2, config_json).bind(3, hash).run();
  require(sqlite3_changes(db_) == 1, path_, "no run with id " + std::to_string(run_id));
}

std::optional<RunRecord> Store::find_run(const std::string& config_hash) const {
  Statement stmt(
      path_, db_,
      (std::string("SELECT ") + kRunColumns + " FROM runs WHERE config_hash = ?1").c_str());
  stmt.bind(1, config_hash);
  if (!stmt.step()) return std::nullopt;
  return read_run(stmt);
}

std::vector<RunRecord> Store::runs() const {
  Statement stmt(path_, db_,
                 (std::string("SELECT ") + kRunColumns + " FROM runs ORDER BY id").c_str());
  std::vector<RunRecord> out;
  while (stmt.step()) out.push_back(read_run(stmt));
  return out;
}

void Store::set_status(int64_t run_id, RunStatus status, const std::string& error,
                       double wall_seconds) {
  require_writable("set a run's status");
  Statement stmt(path_, db_,
                 "UPDATE runs SET status = ?2, error = ?3, wall_seconds = ?4, "
                 "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1");
  stmt.bind(1, run_id).bind(2, to_string(status)).bind(3, error).bind(4, wall_seconds).run();
  require(sqlite3_changes(db_) == 1, path_, "no run with id " + std::to_string(run_id));
}

void Store::insert_records(int64_t run_id, int64_t epoch, const EpochRecords& records) {
  {
    SeriesWriter series(path_, db_, run_id, epoch);
    series.write(Axis::kStep, records.step_scalars);
    series.write(Axis::kEpoch, records.epoch_scalars);
  }
  if (!records.histograms.empty()) {
    HistogramWriter histograms(path_, db_, run_id, epoch);
    for (const auto& h : records.histograms) histograms.write(h);
  }
  if (!records.surfaces.empty() || !records.matrices.empty()) {
    Statement upsert(path_, db_, kUpsertArtifact);
    upsert.bind(1, run_id).bind(3, epoch);
    for (const auto& s : records.surfaces)
      put_artifact(upsert, s.name, "surface", to_json(s.surface));
    for (const auto& m : records.matrices)
      put_artifact(upsert, m.name, "matrix", to_json(m.matrix));
  }
}

void Store::write_epoch(int64_t run_id, int64_t epoch, const EpochRecords& records) {
  require_writable("write an epoch");
  validate_records(path_, run_id, epoch, records);
  Transaction tx(path_, db_);
  // Writing epoch e states that the run's history ends at e, so rewriting an epoch replaces
  // its records (and later ones). Since every epoch commits atomically together with
  // epochs_done, records of epochs >= epochs_done only come from put_records, which writes
  // after the last epoch: the scan is skipped in the common case of appending the next epoch.
  Statement done(path_, db_, "SELECT epochs_done FROM runs WHERE id = ?1");
  done.bind(1, run_id);
  if (done.step() && epoch < done.column_int(0)) drop_from_epoch(path_, db_, run_id, epoch);

  insert_records(run_id, epoch, records);

  Statement progress(path_, db_,
                     "UPDATE runs SET epochs_done = ?2, "
                     "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1");
  progress.bind(1, run_id).bind(2, epoch + 1).run();
  require(sqlite3_changes(db_) == 1, path_, "no run with id " + std::to_string(run_id));
  tx.commit();
}

void Store::put_records(int64_t run_id, int64_t epoch, const EpochRecords& records) {
  require_writable("write records");
  validate_records(path_, run_id, epoch, records);
  Transaction tx(path_, db_);
  insert_records(run_id, epoch, records);
  tx.commit();
}

std::vector<ScalarPoint> Store::scalars(int64_t run_id, Axis axis,
                                        const std::string& name_prefix) const {
  // The prefix becomes the range [prefix, upper) so that the (run_id, axis, name, epoch)
  // index answers it: reading one series of a run must not scan the run's other series.
  std::string upper = prefix_upper_bound(name_prefix);
  const char* sql = upper.empty()
                        ? "SELECT name, steps, vals FROM series WHERE run_id = ?1 AND axis = ?2 "
                          "AND name >= ?3 ORDER BY name, epoch"
                        : "SELECT name, steps, vals FROM series WHERE run_id = ?1 AND axis = ?2 "
                          "AND name >= ?3 AND name < ?4 ORDER BY name, epoch";
  Statement stmt(path_, db_, sql);
  stmt.bind(1, run_id).bind(2, to_string(axis)).bind(3, name_prefix);
  if (!upper.empty()) stmt.bind(4, upper);
  std::vector<ScalarPoint> out;
  while (stmt.step()) {
    std::string name = stmt.column_text(0);
    std::string what = "series '" + name + "' of " + run_text(run_id);
    auto steps = decode_int64s(stmt.column_blob(1), path_, what);
    auto vals = decode_doubles(stmt.column_blob(2), path_, what);
    require(steps.size() == vals.size(), path_, what + ": steps and values differ in length");
    for (size_t i = 0; i < steps.size(); ++i) out.push_back({name, steps[i], vals[i]});
  }
  // Rows are sorted within themselves and usually across epochs (global steps grow); a
  // run that restarted its step count is put in step order here.
  auto by_name_step = [](const ScalarPoint& a, const ScalarPoint& b) {
    return a.name != b.name ? a.name < b.name : a.step < b.step;
  };
  if (!std::is_sorted(out.begin(), out.end(), by_name_step)) {
    std::stable_sort(out.begin(), out.end(), by_name_step);
  }
  return out;
}

std::vector<ScalarPoint> Store::scalars(int64_t run_id, const std::string& axis,
                                        const std::string& name_prefix) const {
  return scalars(run_id, axis_from_string(axis), name_prefix);
}

std::vector<HistogramPoint> Store::histograms(int64_t run_id,
                                              const std::string& name_prefix) const {
  std::string upper = prefix_upper_bound(name_prefix);
  std::string sql =
      "SELECT name, axis, step, edges_id, scale, counts, count, nonfinite, min, max, mean, std "
      "FROM histograms WHERE run_id = ?1 AND name >= ?2";
  if (!upper.empty()) sql += " AND name < ?3";
  sql += " ORDER BY name, axis, step";
  Statement stmt(path_, db_, sql.c_str());
  stmt.bind(1, run_id).bind(2, name_prefix);
  if (!upper.empty()) stmt.bind(3, upper);
  Statement edges_stmt(path_, db_, "SELECT edges FROM bin_edges WHERE id = ?1");
  std::map<int64_t, std::vector<double>> edges_by_id;
  std::vector<HistogramPoint> out;
  while (stmt.step()) {
    HistogramPoint p;
    p.name = stmt.column_text(0);
    p.axis = axis_from_string(stmt.column_text(1));
    p.step = stmt.column_int(2);
    std::string what = "histogram '" + p.name + "' of " + run_text(run_id);
    int64_t edges_id = stmt.column_int(3);
    auto it = edges_by_id.find(edges_id);
    if (it == edges_by_id.end()) {
      edges_stmt.bind(1, edges_id);
      require(
          edges_stmt.step(), path_,
          what + ": bin edges " + std::to_string(edges_id) + " are missing (the store is damaged)");
      it = edges_by_id.emplace(edges_id, decode_doubles(edges_stmt.column_blob(0), path_, what))
               .first;
      edges_stmt.reset();
    }
    Histogram& h = p.hist;
    h.edges = it->second;
    h.scale = stmt.column_text(4);
    h.counts = decode_int64s(stmt.column_blob(5), path_, what);
    h.count = stmt.column_int(6);
    h.nonfinite = stmt.column_int(7);
    h.min = stmt.column_double(8);
    h.max = stmt.column_double(9);
    h.mean = stmt.column_double(10);
    h.std = stmt.column_double(11);
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<std::string> Store::histogram_names(int64_t run_id) const {
  Statement stmt(path_, db_,
                 "SELECT DISTINCT name FROM histograms WHERE run_id = ?1 ORDER BY name");
  stmt.bind(1, run_id);
  std::vector<std::string> out;
  while (stmt.step()) out.push_back(stmt.column_text(0));
  return out;
}

std::vector<SurfaceRecord> Store::surfaces(int64_t run_id, const std::string& name) const {
  Statement stmt(path_, db_,
                 "SELECT name, epoch, json FROM artifacts WHERE run_id = ?1 AND kind = 'surface' "
                 "AND (?2 = '' OR name = ?2) ORDER BY name, epoch");
  stmt.bind(1, run_id).bind(2, name);
  std::vector<SurfaceRecord> out;
  while (stmt.step()) {
    SurfaceRecord r;
    r.name = stmt.column_text(0);
    r.epoch = stmt.column_int(1);
    std::string what = record_what("surface", r.name, run_id, r.epoch);
    r.surface =
        surface_from_json(parse_artifact(path_, stmt.column_text(2), what), path_ + ": " + what);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<MatrixRecord> Store::matrices(int64_t run_id, const std::string& name) const {
  Statement stmt(path_, db_,
                 "SELECT name, epoch, json FROM artifacts WHERE run_id = ?1 AND kind = 'matrix' "
                 "AND (?2 = '' OR name = ?2) ORDER BY name, epoch");
  stmt.bind(1, run_id).bind(2, name);
  std::vector<MatrixRecord> out;
  while (stmt.step()) {
    MatrixRecord r;
    r.name = stmt.column_text(0);
    r.epoch = stmt.column_int(1);
    std::string what = record_what("matrix", r.name, run_id, r.epoch);
    r.matrix =
        matrix_from_json(parse_artifact(path_, stmt.column_text(2), what), path_ + ": " + what);
    out.push_back(std::move(r));
  }
  return out;
}

int64_t Store::epochs_done(int64_t run_id) const {
  Statement stmt(path_, db_, "SELECT epochs_done FROM runs WHERE id = ?1");
  stmt.bind(1, run_id);
  require(stmt.step(), path_, "no run with id " + std::to_string(run_id));
  return stmt.column_int(0);
}

void Store::truncate_from_epoch(int64_t run_id, int64_t from_epoch) {
  require_writable("truncate a run");
  Transaction tx(path_, db_);
  drop_from_epoch(path_, db_, run_id, from_epoch);
  Statement progress(path_, db_,
                     "UPDATE runs SET epochs_done = min(epochs_done, max(?2, 0)), "
                     "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1");
  progress.bind(1, run_id).bind(2, from_epoch).run();
  require(sqlite3_changes(db_) == 1, path_, "no run with id " + std::to_string(run_id));
  tx.commit();
}

void Store::set_meta(const std::string& key, const std::string& value) {
  require_writable("write metadata");
  Statement stmt(path_, db_,
                 "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
  stmt.bind(1, key).bind(2, value).run();
}

std::optional<std::string> Store::meta(const std::string& key) const {
  Statement stmt(path_, db_, "SELECT value FROM meta WHERE key = ?1");
  stmt.bind(1, key);
  if (!stmt.step()) return std::nullopt;
  return stmt.column_text(0);
}

std::vector<std::pair<std::string, std::string>> Store::all_meta() const {
  Statement stmt(path_, db_, "SELECT key, value FROM meta ORDER BY key");
  std::vector<std::pair<std::string, std::string>> out;
  while (stmt.step()) out.emplace_back(stmt.column_text(0), stmt.column_text(1));
  return out;
}

}  // namespace normlab::store
