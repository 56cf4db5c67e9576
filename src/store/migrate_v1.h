// Schema 1 -> 2: a store written by normlab before typed records (one row per scalar point,
// JSON artifacts by convention) is rewritten in one transaction. Internal to store/
// (Store::open decides when).
#pragma once

#include <sqlite3.h>

#include <string>

#include "core/error.h"
#include "store/store.h"

namespace normlab::store::detail {

// Runs fn (a migration); an Error leaves with a hint saying the file was not changed.
template <typename Fn>
auto with_migration_hint(Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error& e) {
    throw Error(
        e.subject(),
        "cannot migrate to schema " + std::to_string(Store::kSchemaVersion) + ": " + e.problem(),
        "the file was left unchanged (still schema 1, readable by the normlab that wrote "
        "it); fix or delete the named record (sqlite3 shell) and open the store again");
  }
}

// Rewrites a schema-1 store as schema 2 in one transaction. `path` names the file in
// messages; `db` may be an in-memory copy of it. Throws Error naming the bad record.
void migrate_v1(const std::string& path, sqlite3* db);

// Gives the dropped tables' pages back (VACUUM); a failure only logs.
void compact(const std::string& path, sqlite3* db);

// A read-only open of a schema-1 store reads a migrated copy in memory (returned, owned by
// the caller): the file is not written.
sqlite3* migrated_copy_in_memory(const std::string& path, sqlite3* file_db);

}  // namespace normlab::store::detail
