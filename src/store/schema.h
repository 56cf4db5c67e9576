// The store's tables (schema 2) and the artifact upsert. Internal to store/: store.cpp creates
// the tables, the schema-1 migration (migrate_v1.cpp) creates the record tables beside the
// old ones.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "store/sqlite.h"

namespace normlab::store::detail {

// Tables that schema 1 already had in this form.
constexpr const char* kRunsTable = R"sql(
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
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
)sql";

// The record tables of schema 2 (created for a new store, and by the migration from 1).
// `epoch` is the epoch that wrote a record, so that truncate_from_epoch can drop per-step
// records too (their `step` is a global step).
constexpr const char* kRecordTables = R"sql(
-- One row per series per epoch: steps is a little-endian int64 array, vals a float64 array
-- of the same length (NaN stays NaN). A row per point cost ~60 bytes and an index entry;
-- a 20k-point epoch of per-step gradient norms is now ~40 rows.
CREATE TABLE series (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  axis TEXT NOT NULL CHECK (axis IN ('step', 'epoch')),
  name TEXT NOT NULL CHECK (name <> ''),
  epoch INTEGER NOT NULL,
  steps BLOB NOT NULL,
  vals BLOB NOT NULL,
  CHECK (length(steps) = length(vals) AND length(steps) % 8 = 0)
);
CREATE UNIQUE INDEX series_by_name ON series(run_id, axis, name, epoch);
-- Bin edges are shared by every epoch of a histogram and usually across runs: stored once.
CREATE TABLE bin_edges (
  id INTEGER PRIMARY KEY,
  edges BLOB NOT NULL UNIQUE
);
-- min/max/mean/std are NULL for NaN (SQLite stores NaN as NULL; reading maps it back).
CREATE TABLE histograms (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  name TEXT NOT NULL CHECK (name <> ''),
  axis TEXT NOT NULL CHECK (axis IN ('step', 'epoch')),
  step INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  edges_id INTEGER NOT NULL REFERENCES bin_edges(id),
  scale TEXT NOT NULL CHECK (scale IN ('linear', 'log10')),
  counts BLOB NOT NULL,
  count INTEGER NOT NULL,
  nonfinite INTEGER NOT NULL,
  min REAL,
  max REAL,
  mean REAL,
  std REAL
);
CREATE UNIQUE INDEX histograms_by_name ON histograms(run_id, name, axis, step);
-- Surfaces and matrices as the JSON of store/records.h (to_json / *_from_json).
CREATE TABLE artifacts (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  name TEXT NOT NULL CHECK (name <> ''),
  epoch INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('surface', 'matrix')),
  json TEXT NOT NULL,
  PRIMARY KEY (run_id, name, epoch)
);
)sql";

constexpr const char* kUpsertArtifact =
    "INSERT INTO artifacts (run_id, name, epoch, kind, json) VALUES (?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT (run_id, name, epoch) DO UPDATE SET kind = excluded.kind, json = excluded.json";

// Binds and runs a prepared kUpsertArtifact whose run id (?1) and epoch (?3) are bound.
inline void put_artifact(Statement& upsert, const std::string& name, const char* kind,
                         const nlohmann::json& value) {
  upsert.bind(2, name).bind(4, std::string(kind)).bind(5, value.dump()).run();
  upsert.reset();
}

inline std::string run_text(int64_t run_id) { return "run " + std::to_string(run_id); }

}  // namespace normlab::store::detail
