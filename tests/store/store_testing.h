// Shared by the store layer's tests: a fresh directory per test, Error expectations, raw
// SQLite access (to check what is on disk independently of the Store class) and the
// schema-2 blob format decoded independently of store.cpp.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"

namespace normlab::store::testing {

namespace fs = std::filesystem;

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("normlab_store_test_" + std::to_string(rd()));
    fs::create_directories(dir_);
    path_ = (dir_ / "study.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string path_;
};

// Runs `fn`, expecting an Error whose message contains every string in `needles`.
template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "expected normlab::Error";
  } catch (const Error& e) {
    std::string what = e.what();
    for (const auto& n : needles) EXPECT_NE(what.find(n), std::string::npos) << what;
  }
}

// A raw connection, for reading (or tampering with) a store behind the Store class's back.
class RawDb {
 public:
  explicit RawDb(const std::string& path, bool read_only = true) {
    int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, flags, nullptr), SQLITE_OK) << path;
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void exec(const std::string& sql) {
    char* message = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message), SQLITE_OK)
        << sql << ": " << (message != nullptr ? message : "");
    sqlite3_free(message);
  }

  // Every row of `sql`, each column as text (NULL = "NULL", REAL with 17 digits), blobs as
  // raw bytes.
  std::vector<std::vector<std::string>> rows(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sql << ": " << sqlite3_errmsg(db_);
    std::vector<std::vector<std::string>> out;
    while (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        if (sqlite3_column_type(stmt, i) == SQLITE_NULL) {
          row.emplace_back("NULL");
        } else if (sqlite3_column_type(stmt, i) == SQLITE_FLOAT) {
          // 17 significant digits: the double back exactly (SQLite's own text has 15).
          char buf[64];
          std::snprintf(buf, sizeof buf, "%.17g", sqlite3_column_double(stmt, i));
          row.emplace_back(buf);
        } else if (sqlite3_column_type(stmt, i) == SQLITE_BLOB) {
          const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt, i));
          row.emplace_back(p, static_cast<size_t>(sqlite3_column_bytes(stmt, i)));
        } else {
          const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
          row.emplace_back(p, static_cast<size_t>(sqlite3_column_bytes(stmt, i)));
        }
      }
      out.push_back(std::move(row));
    }
    sqlite3_finalize(stmt);
    return out;
  }
  std::string value(const std::string& sql) {
    auto r = rows(sql);
    return r.empty() || r[0].empty() ? "" : r[0][0];
  }
  sqlite3* get() { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// Schema 2's blobs, decoded here by hand: little-endian 8-byte values.
inline uint64_t le_u64(const std::string& blob, size_t i) {
  uint64_t v = 0;
  for (int b = 7; b >= 0; --b) v = (v << 8) | static_cast<unsigned char>(blob[8 * i + b]);
  return v;
}
inline std::vector<int64_t> le_int64s(const std::string& blob) {
  EXPECT_EQ(blob.size() % 8, 0u);
  std::vector<int64_t> out;
  for (size_t i = 0; i < blob.size() / 8; ++i) out.push_back(static_cast<int64_t>(le_u64(blob, i)));
  return out;
}
inline std::vector<double> le_doubles(const std::string& blob) {
  EXPECT_EQ(blob.size() % 8, 0u);
  std::vector<double> out;
  for (size_t i = 0; i < blob.size() / 8; ++i) {
    uint64_t bits = le_u64(blob, i);
    double d = 0;
    std::memcpy(&d, &bits, sizeof d);
    out.push_back(d);
  }
  return out;
}

}  // namespace normlab::store::testing
