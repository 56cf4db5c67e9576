#include "store/store.h"

#include <sqlite3.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <utility>

#include "core/error.h"
#include "core/files.h"

namespace normlab::store {
namespace {

// busy_timeout: how long a writer waits for another process's transaction before giving up.
// Epoch transactions take milliseconds, so 5 s only expires when something is stuck.
constexpr int kBusyTimeoutMs = 5000;

constexpr const char* kSchema = R"sql(
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  grp TEXT NOT NULL,
  config_json TEXT NOT NULL,
  config_hash TEXT NOT NULL UNIQUE,
  seed INTEGER NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'running', 'complete', 'failed')),
  error TEXT NOT NULL DEFAULT '',
  wall_seconds REAL NOT NULL DEFAULT 0,
  epochs_done INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
-- `epoch` is the epoch that wrote the record, so that truncate_from_epoch can drop per-step
-- records too (their `step` is a global step). `value` is NULL for NaN: SQLite stores NaN
-- as NULL, and reading maps it back.
CREATE TABLE scalars (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('step', 'epoch')),
  name TEXT NOT NULL CHECK (name <> ''),
  step INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  value REAL
);
CREATE INDEX scalars_by_series ON scalars(run_id, kind, name);
CREATE TABLE artifacts (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  json TEXT NOT NULL,
  PRIMARY KEY (run_id, name)
);
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
)sql";

// The columns of RunRecord, in the order read_run expects.
constexpr const char* kRunColumns =
    "id, name, grp, config_json, config_hash, seed, status, error, wall_seconds";

[[noreturn]] void fail(const std::string& path, sqlite3* db, const std::string& what) {
  std::string message = what;
  if (db != nullptr) message += ": " + std::string(sqlite3_errmsg(db));
  int code = db != nullptr ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
  std::string hint;
  if ((code & 0xff) == SQLITE_BUSY) {
    hint = "another process holds the store's write lock; wait for it or stop it";
  } else if ((code & 0xff) == SQLITE_READONLY) {
    hint = "the store was opened read-only, or the file or its directory is not writable";
  } else if ((code & 0xff) == SQLITE_FULL) {
    hint = "free disk space and run again; the last transaction was rolled back";
  }
  throw Error(path, message, hint);
}

// A prepared statement that finalizes itself. Binding is 1-based like SQLite's C API.
class Statement {
 public:
  Statement(const std::string& path, sqlite3* db, const char* sql) : path_(path), db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      fail(path_, db_, std::string("cannot prepare `") + sql + "`");
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, int64_t value) {
    check(sqlite3_bind_int64(stmt_, index, value), "bind");
    return *this;
  }
  Statement& bind(int index, double value) {
    // SQLite turns NaN into NULL itself; be explicit so the read side can rely on it.
    int rc = std::isnan(value) ? sqlite3_bind_null(stmt_, index)
                               : sqlite3_bind_double(stmt_, index, value);
    check(rc, "bind");
    return *this;
  }
  Statement& bind(int index, const std::string& value) {
    check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                            SQLITE_TRANSIENT),
          "bind");
    return *this;
  }

  // Binds without copying: `value` must outlive the next step().
  Statement& bind_static(int index, const std::string& value) {
    check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                            SQLITE_STATIC),
          "bind");
    return *this;
  }

  // Returns true while a row is available; false when done. Throws on error.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(path_, db_, std::string("cannot execute `") + sqlite3_sql(stmt_) + "`");
  }
  void run() {
    while (step()) {
    }
  }
  // Makes the statement ready to run again (reused inside one transaction); bindings stay.
  void reset() { sqlite3_reset(stmt_); }

  int64_t column_int(int i) const { return sqlite3_column_int64(stmt_, i); }
  double column_double(int i) const {
    if (sqlite3_column_type(stmt_, i) == SQLITE_NULL) {
      return std::numeric_limits<double>::quiet_NaN();
    }
    return sqlite3_column_double(stmt_, i);
  }
  std::string column_text(int i) const {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    if (text == nullptr) return {};
    return std::string(text, static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
  }

 private:
  void check(int rc, const char* what) {
    if (rc != SQLITE_OK) fail(path_, db_, what);
  }

  std::string path_;
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(const std::string& path, sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message != nullptr ? message : sqlite3_errmsg(db);
    sqlite3_free(message);
    throw Error(path, std::string("cannot execute `") + sql + "`: " + text);
  }
}

// BEGIN IMMEDIATE takes the write lock up front (waiting up to busy_timeout), so a
// transaction never fails half-way because another writer got in first. Rolls back unless
// commit() was reached.
class Transaction {
 public:
  Transaction(const std::string& path, sqlite3* db) : path_(path), db_(db) {
    exec(path_, db_, "BEGIN IMMEDIATE");
  }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    exec(path_, db_, "COMMIT");
    done_ = true;
  }

 private:
  std::string path_;
  sqlite3* db_;
  bool done_ = false;
};

// Closes the handle unless released (open() throws on several paths).
struct DbHandle {
  sqlite3* db = nullptr;
  ~DbHandle() {
    if (db != nullptr) sqlite3_close_v2(db);
  }
  sqlite3* release() { return std::exchange(db, nullptr); }
};

int64_t pragma_int(const std::string& path, sqlite3* db, const char* sql) {
  Statement stmt(path, db, sql);
  return stmt.step() ? stmt.column_int(0) : 0;
}

enum class FileKind { kEmpty, kNormlab, kForeign };

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

void check_kind(const std::string& path, const std::string& kind) {
  require(kind == "step" || kind == "epoch", path, "unknown scalar kind '" + kind + "'",
          "use \"step\" or \"epoch\"");
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
  if (!options.read_only) {
    // WAL lets the report and dashboard read while a study writes; synchronous=NORMAL is
    // the documented safe pairing with WAL (a power loss may drop the last commits, never
    // corrupt the file): https://www.sqlite.org/pragma.html#pragma_synchronous
    exec(path, db, "PRAGMA journal_mode = WAL");
    exec(path, db, "PRAGMA synchronous = NORMAL");
    if (kind == FileKind::kEmpty) {
      Transaction tx(path, db);
      // Another process may have created the schema while we waited for the lock.
      if (pragma_int(path, db, "PRAGMA user_version") == 0) {
        exec(path, db, kSchema);
        exec(path, db, ("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str());
        exec(path, db, ("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str());
      }
      tx.commit();
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

void Store::write_epoch(int64_t run_id, int64_t epoch, const std::vector<ScalarPoint>& step_scalars,
                        const std::vector<ScalarPoint>& epoch_scalars) {
  require_writable("write an epoch");
  Transaction tx(path_, db_);
  // Writing epoch e states that the run's history ends at e, so rewriting an epoch replaces
  // its records (and later ones). Since every epoch commits atomically together with
  // epochs_done, records of epochs >= epochs_done cannot exist: the scan is skipped in the
  // common case of appending the next epoch.
  Statement done(path_, db_, "SELECT epochs_done FROM runs WHERE id = ?1");
  done.bind(1, run_id);
  if (done.step() && epoch < done.column_int(0)) {
    Statement drop(path_, db_, "DELETE FROM scalars WHERE run_id = ?1 AND epoch >= ?2");
    drop.bind(1, run_id).bind(2, epoch).run();
  }

  // One prepared statement for every row: ~20k per-step rows per epoch take milliseconds.
  Statement insert(path_, db_,
                   "INSERT INTO scalars (run_id, kind, name, step, epoch, value) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  insert.bind(1, run_id).bind(5, epoch);
  auto insert_all = [&](const std::string& kind, const std::vector<ScalarPoint>& points) {
    insert.bind_static(2, kind);
    for (const auto& p : points) {
      // Bindings persist across reset: only name, step and value change per row.
      insert.bind_static(3, p.name).bind(4, p.step).bind(6, p.value).run();
      insert.reset();
    }
  };
  const std::string step_kind = "step";
  const std::string epoch_kind = "epoch";
  insert_all(step_kind, step_scalars);
  insert_all(epoch_kind, epoch_scalars);

  Statement progress(path_, db_,
                     "UPDATE runs SET epochs_done = ?2, "
                     "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1");
  progress.bind(1, run_id).bind(2, epoch + 1).run();
  require(sqlite3_changes(db_) == 1, path_, "no run with id " + std::to_string(run_id));
  tx.commit();
}

std::vector<ScalarPoint> Store::scalars(int64_t run_id, const std::string& kind,
                                        const std::string& name_prefix) const {
  check_kind(path_, kind);
  // A prefix is turned into the range [prefix, upper) so that the (run_id, kind, name) index
  // answers it: reading one series of a run must not scan the run's other series.
  std::string upper = name_prefix;
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xff) upper.pop_back();
  if (!upper.empty()) {
    upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
  }
  const char* sql = upper.empty()
                        ? "SELECT name, step, value FROM scalars WHERE run_id = ?1 AND kind = ?2 "
                          "AND name >= ?3 ORDER BY name, step, rowid"
                        : "SELECT name, step, value FROM scalars WHERE run_id = ?1 AND kind = ?2 "
                          "AND name >= ?3 AND name < ?4 ORDER BY name, step, rowid";
  Statement stmt(path_, db_, sql);
  stmt.bind(1, run_id).bind(2, kind).bind(3, name_prefix);
  if (!upper.empty()) stmt.bind(4, upper);
  std::vector<ScalarPoint> out;
  while (stmt.step()) {
    out.push_back({stmt.column_text(0), stmt.column_int(1), stmt.column_double(2)});
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
  Statement drop(path_, db_, "DELETE FROM scalars WHERE run_id = ?1 AND epoch >= ?2");
  drop.bind(1, run_id).bind(2, from_epoch).run();
  Statement progress(path_, db_,
                     "UPDATE runs SET epochs_done = min(epochs_done, max(?2, 0)), "
                     "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1");
  progress.bind(1, run_id).bind(2, from_epoch).run();
  require(sqlite3_changes(db_) == 1, path_, "no run with id " + std::to_string(run_id));
  tx.commit();
}

void Store::put_artifact(int64_t run_id, const std::string& name, const nlohmann::json& value) {
  require_writable("write an artifact");
  Statement stmt(path_, db_,
                 "INSERT INTO artifacts (run_id, name, json) VALUES (?1, ?2, ?3) "
                 "ON CONFLICT (run_id, name) DO UPDATE SET json = excluded.json");
  stmt.bind(1, run_id).bind(2, name).bind(3, value.dump()).run();
}

std::optional<nlohmann::json> Store::artifact(int64_t run_id, const std::string& name) const {
  Statement stmt(path_, db_, "SELECT json FROM artifacts WHERE run_id = ?1 AND name = ?2");
  stmt.bind(1, run_id).bind(2, name);
  if (!stmt.step()) return std::nullopt;
  auto parsed = nlohmann::json::parse(stmt.column_text(0), nullptr, /*allow_exceptions=*/false);
  require(!parsed.is_discarded(), path_,
          "artifact '" + name + "' of run " + std::to_string(run_id) + " is not valid JSON");
  return parsed;
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
