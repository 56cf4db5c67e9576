#include "store/migrate_v1.h"

#include <map>
#include <vector>

#include "core/log.h"
#include "store/blob.h"
#include "store/records.h"
#include "store/schema.h"
#include "store/sqlite.h"

namespace normlab::store::detail {
namespace {

using nlohmann::json;

json parse_v1_json(const std::string& text, const std::string& what) {
  auto parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  require(!parsed.is_discarded(), what, "is not valid JSON");
  require(parsed.is_object(), what, "is not a JSON object");
  return parsed;
}

const json& v1_field(const json& j, const char* key, const std::string& what) {
  auto it = j.find(key);
  require(it != j.end(), what, std::string("has no '") + key + "' field");
  return *it;
}

// Schema-1 landscape {"alphas": [A], "betas": [B], "loss": [B][A]} (probe/landscape.cpp
// wrote loss[beta index][alpha index]) as a Surface with x = alphas, y = betas.
Surface landscape_from_v1(const std::string& text, const std::string& what) {
  json v1 = parse_v1_json(text, what);
  json v2 = {{"x_label", "alpha"},
             {"y_label", "beta"},
             {"z_label", "loss"},
             {"x", v1_field(v1, "alphas", what)},
             {"y", v1_field(v1, "betas", what)},
             {"z", v1_field(v1, "loss", what)}};
  return surface_from_json(v2, what + " (alphas -> x, betas -> y, loss[beta][alpha] -> z)");
}

// Schema-1 confusion {"split", "labels": [K], "matrix": [K][K]}; `split` picks the name.
MatrixRecord confusion_from_v1(const std::string& v1_name, const std::string& text,
                               const std::string& what) {
  json v1 = parse_v1_json(text, what);
  json labels = json::array();
  const json& v1_labels = v1_field(v1, "labels", what);
  require(v1_labels.is_array(), what, "'labels' is not an array");
  for (const auto& l : v1_labels) labels.push_back(l.is_string() ? l.get<std::string>() : l.dump());
  json v2 = {
      {"row_labels", labels}, {"column_labels", labels}, {"values", v1_field(v1, "matrix", what)}};
  MatrixRecord record;
  record.matrix = matrix_from_json(v2, what + " (labels -> rows and columns, matrix -> values)");
  auto split = v1.find("split");
  if (split != v1.end() && split->is_string() && split->get<std::string>() == "train_eval") {
    record.name = "confusion/train_eval";
  } else {
    record.name = v1_name == "confusion" ? "confusion/val" : "confusion/test";
  }
  return record;
}

}  // namespace

// Rewrites a schema-1 store as schema 2 in one transaction (see Store::open). `path` names
// the file in messages; `db` may be an in-memory copy of it.
void migrate_v1(const std::string& path, sqlite3* db) {
  Transaction tx(path, db);
  // Another process may have migrated the file while we waited for the lock.
  if (pragma_int(path, db, "PRAGMA user_version") != 1) return;
  exec(path, db, "ALTER TABLE artifacts RENAME TO artifacts_v1");
  exec(path, db, kRecordTables);

  // Scalars: one v1 row per point -> one row per (run, kind, name, epoch); NULL was NaN.
  int64_t points = 0, rows = 0;
  {
    Statement read(path, db,
                   "SELECT run_id, kind, name, epoch, step, value FROM scalars "
                   "ORDER BY run_id, kind, name, epoch, step, rowid");
    Statement insert(path, db,
                     "INSERT INTO series (run_id, axis, name, epoch, steps, vals) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    int64_t run_id = -1, epoch = -1;
    std::string kind, name;
    std::vector<int64_t> steps;
    std::vector<double> vals;
    auto flush = [&] {
      if (steps.empty()) return;
      insert.bind(1, run_id).bind(2, kind).bind(3, name).bind(4, epoch);
      insert.bind_blob(5, encode_int64s(steps)).bind_blob(6, encode_doubles(vals)).run();
      insert.reset();
      ++rows;
      steps.clear();
      vals.clear();
    };
    while (read.step()) {
      int64_t r = read.column_int(0), e = read.column_int(3);
      std::string k = read.column_text(1), n = read.column_text(2);
      if (r != run_id || e != epoch || k != kind || n != name) {
        flush();
        run_id = r;
        epoch = e;
        kind = std::move(k);
        name = std::move(n);
      }
      steps.push_back(read.column_int(4));
      vals.push_back(read.column_double(5));
      ++points;
    }
    flush();
  }

  // Artifacts: typed by name, at the run's last epoch (schema 1 kept no epoch).
  int64_t kept = 0;
  {
    Statement read(path, db,
                   "SELECT a.run_id, a.name, a.json, max(r.epochs_done - 1, 0) "
                   "FROM artifacts_v1 a JOIN runs r ON r.id = a.run_id ORDER BY a.run_id, a.name");
    Statement upsert(path, db, kUpsertArtifact);
    while (read.step()) {
      int64_t run_id = read.column_int(0);
      std::string name = read.column_text(1);
      std::string what = path + ": schema-1 artifact '" + name + "' of " + run_text(run_id);
      upsert.bind(1, run_id).bind(3, read.column_int(3));
      try {
        if (name == "landscape") {
          put_artifact(upsert, "landscape", "surface",
                       to_json(landscape_from_v1(read.column_text(2), what)));
        } else if (name == "confusion" || name == "confusion_test") {
          auto record = confusion_from_v1(name, read.column_text(2), what);
          put_artifact(upsert, record.name, "matrix", to_json(record.matrix));
        } else {
          log::warn(what,
                    ": no typed record for this artifact; dropped by the migration to "
                    "schema 2");
          continue;
        }
      } catch (const json::exception& e) {
        throw Error(what, std::string("cannot be read: ") + e.what());
      }
      ++kept;
    }
  }
  exec(path, db, "DROP TABLE scalars");
  exec(path, db, "DROP TABLE artifacts_v1");
  exec(path, db, ("PRAGMA user_version = " + std::to_string(Store::kSchemaVersion)).c_str());
  tx.commit();
  log::info(path, ": migrated store schema 1 -> 2 (", points, " scalar points in ", rows,
            " series rows, ", kept, " artifacts)");
}

// The migrated file still holds the dropped tables' pages on its free list; VACUUM gives
// them back (the series blobs are several times smaller than the scalar rows). Not fatal:
// the migration has committed, a larger file is still a valid store.
void compact(const std::string& path, sqlite3* db) {
  try {
    exec(path, db, "VACUUM");
    exec(path, db, "PRAGMA wal_checkpoint(TRUNCATE)");
  } catch (const Error& e) {
    log::warn(e.what(), " (the store is migrated; it only stays larger than needed)");
  }
}

// A read-only open of a schema-1 store reads a migrated copy in memory: the file is not
// written (it may belong to a running older normlab, or sit on a read-only medium).
sqlite3* migrated_copy_in_memory(const std::string& path, sqlite3* file_db) {
  DbHandle memory;
  if (sqlite3_open_v2(":memory:", &memory.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    fail(path, memory.db, "cannot open an in-memory database");
  }
  sqlite3_extended_result_codes(memory.db, 1);
  sqlite3_backup* backup = sqlite3_backup_init(memory.db, "main", file_db, "main");
  if (backup == nullptr) fail(path, memory.db, "cannot copy the schema-1 store into memory");
  int rc = sqlite3_backup_step(backup, -1);
  sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) fail(path, memory.db, "cannot copy the schema-1 store into memory");
  exec(path, memory.db, "PRAGMA foreign_keys = ON");
  with_migration_hint([&] { migrate_v1(path, memory.db); });
  log::info(path,
            ": schema-1 store read through an in-memory migration; open it once for "
            "writing (e.g. `normlab study run`) to migrate the file");
  return memory.release();
}

}  // namespace normlab::store::detail
