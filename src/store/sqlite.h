// The store's thin layer over SQLite's C API: errors that name the file and say what to do
// (busy, read-only, disk full), prepared statements that finalize themselves, transactions
// that take the write lock up front and roll back unless committed. Internal to store/.
#pragma once

#include <sqlite3.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "core/error.h"

namespace normlab::store::detail {

[[noreturn]] inline void fail(const std::string& path, sqlite3* db, const std::string& what) {
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
  Statement& bind_blob(int index, const std::string& bytes) {
    check(sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()),
                            SQLITE_TRANSIENT),
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

  bool column_is_null(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  int64_t column_int(int i) const { return sqlite3_column_int64(stmt_, i); }
  double column_double(int i) const {
    if (column_is_null(i)) return std::numeric_limits<double>::quiet_NaN();
    return sqlite3_column_double(stmt_, i);
  }
  std::string column_text(int i) const {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    if (text == nullptr) return {};
    return std::string(text, static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
  }
  std::string column_blob(int i) const {
    const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
    if (data == nullptr) return {};
    return std::string(data, static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
  }

 private:
  void check(int rc, const char* what) {
    if (rc != SQLITE_OK) fail(path_, db_, what);
  }

  std::string path_;
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

inline void exec(const std::string& path, sqlite3* db, const char* sql) {
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

inline int64_t pragma_int(const std::string& path, sqlite3* db, const char* sql) {
  Statement stmt(path, db, sql);
  return stmt.step() ? stmt.column_int(0) : 0;
}

}  // namespace normlab::store::detail
