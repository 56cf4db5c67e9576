// Schema 1 -> 2 against a real schema-1 store (tests/fixtures/store/README.md says how it was
// made). The expected values are read from the fixture's v1 tables with raw SQLite here, so
// the test does not share code with the migration it checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "store/store.h"
#include "store/store_testing.h"

namespace normlab::store {
namespace {

using nlohmann::json;
using testing::expect_error;
using testing::le_doubles;
using testing::le_int64s;
using testing::RawDb;
namespace fs = std::filesystem;

fs::path fixture() {
  // ctest sets NORMLAB_FIXTURES; when the binary is run by hand, fall back to the source tree.
  fs::path dir = std::getenv("NORMLAB_FIXTURES") != nullptr
                     ? fs::path(std::getenv("NORMLAB_FIXTURES"))
                     : fs::path(__FILE__).parent_path().parent_path() / "fixtures";
  return dir / "store" / "v1_quickstart_smoke.db";
}

// (run, axis, name, epoch, step, value) of one scalar point; value as its bit pattern's text
// so that NaN compares equal to NaN.
using Point = std::tuple<int64_t, std::string, std::string, int64_t, int64_t, std::string>;

std::string value_text(double v) {
  if (std::isnan(v)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::vector<Point> v1_points(RawDb& raw) {
  std::vector<Point> out;
  for (const auto& r : raw.rows("SELECT run_id, kind, name, epoch, step, value FROM scalars")) {
    out.emplace_back(std::stoll(r[0]), r[1], r[2], std::stoll(r[3]), std::stoll(r[4]),
                     r[5] == "NULL" ? "nan" : value_text(std::stod(r[5])));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<Point> v2_points(RawDb& raw) {
  std::vector<Point> out;
  for (const auto& r : raw.rows("SELECT run_id, axis, name, epoch, steps, vals FROM series")) {
    auto steps = le_int64s(r[4]);
    auto vals = le_doubles(r[5]);
    EXPECT_EQ(steps.size(), vals.size());
    for (size_t i = 0; i < steps.size(); ++i) {
      out.emplace_back(std::stoll(r[0]), r[1], r[2], std::stoll(r[3]), steps[i],
                       value_text(vals[i]));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

class MigrationTest : public testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    ASSERT_TRUE(fs::exists(fixture())) << fixture();
    fs::copy_file(fixture(), path_);
  }

  // Size of the store on disk, WAL included.
  uintmax_t disk_size() const {
    uintmax_t size = fs::file_size(path_);
    if (fs::exists(path_ + "-wal")) size += fs::file_size(path_ + "-wal");
    return size;
  }
};

TEST_F(MigrationTest, FixtureIsSchemaOne) {
  RawDb raw(path_);
  EXPECT_EQ(raw.value("PRAGMA user_version"), "1");
  EXPECT_EQ(raw.value("SELECT count(*) FROM sqlite_master WHERE name = 'scalars'"), "1");
  EXPECT_GT(std::stoi(raw.value("SELECT count(*) FROM scalars")), 100);
}

TEST_F(MigrationTest, MigratesEveryRunScalarAndArtifact) {
  // Expected values, straight from the v1 tables.
  std::vector<std::vector<std::string>> v1_runs;
  std::vector<Point> expected;
  std::map<std::pair<int64_t, std::string>, json> v1_artifacts;
  std::map<int64_t, int64_t> epochs_done;
  std::vector<std::vector<std::string>> v1_meta;
  {
    RawDb raw(path_);
    v1_runs = raw.rows("SELECT id, name, grp, config_hash, status, epochs_done FROM runs");
    expected = v1_points(raw);
    for (const auto& r : raw.rows("SELECT run_id, name, json FROM artifacts")) {
      v1_artifacts[{std::stoll(r[0]), r[1]}] = json::parse(r[2]);
    }
    for (const auto& r : v1_runs) epochs_done[std::stoll(r[0])] = std::stoll(r[5]);
    v1_meta = raw.rows("SELECT key, value FROM meta ORDER BY key");
  }
  ASSERT_EQ(v1_runs.size(), 7u);
  ASSERT_FALSE(expected.empty());
  uintmax_t v1_size = disk_size();

  { Store::open(path_); }  // migrates

  RawDb raw(path_);
  EXPECT_EQ(raw.value("PRAGMA user_version"), "2");
  EXPECT_EQ(raw.value("PRAGMA application_id"), std::to_string(Store::kApplicationId));
  EXPECT_EQ(raw.value("SELECT count(*) FROM sqlite_master WHERE name IN "
                      "('scalars', 'artifacts_v1')"),
            "0");
  EXPECT_EQ(raw.rows("SELECT id, name, grp, config_hash, status, epochs_done FROM runs"), v1_runs);
  EXPECT_EQ(raw.rows("SELECT key, value FROM meta ORDER BY key"), v1_meta);
  // Every v1 point, with its run, kind, name, epoch, step and value, and nothing else.
  EXPECT_EQ(v2_points(raw), expected);
  // One row per series per epoch.
  EXPECT_EQ(raw.value("SELECT count(*) FROM series"),
            raw.value("SELECT count(*) FROM (SELECT DISTINCT run_id, axis, name, epoch FROM "
                      "series)"));

  auto store = Store::open(path_, {/*read_only=*/true});
  // Through the API: per run and axis, ordered by name then step, as v1 ordered them.
  for (const auto& run : store->runs()) {
    for (const char* axis : {"step", "epoch"}) {
      std::vector<std::pair<std::string, int64_t>> want;
      for (const auto& p : expected) {
        if (std::get<0>(p) == run.id && std::get<1>(p) == axis) {
          want.emplace_back(std::get<2>(p), std::get<4>(p));
        }
      }
      std::sort(want.begin(), want.end());
      std::vector<std::pair<std::string, int64_t>> got;
      for (const auto& p : store->scalars(run.id, axis)) got.emplace_back(p.name, p.step);
      EXPECT_EQ(got, want) << run.name << " " << axis;
    }
  }

  // Artifacts: landscape -> Surface (z as the probe wrote it: rows = beta), confusion ->
  // Matrix, both at the run's last epoch.
  size_t landscapes = 0, confusions = 0;
  for (const auto& [key, v1] : v1_artifacts) {
    const auto& [run_id, name] = key;
    int64_t epoch = std::max<int64_t>(epochs_done[run_id] - 1, 0);
    if (name == "landscape") {
      auto surfaces = store->surfaces(run_id, "landscape");
      ASSERT_EQ(surfaces.size(), 1u) << run_id;
      EXPECT_EQ(surfaces[0].epoch, epoch);
      const Surface& s = surfaces[0].surface;
      EXPECT_EQ(s.x_label, "alpha");
      EXPECT_EQ(s.y_label, "beta");
      EXPECT_EQ(s.z_label, "loss");
      EXPECT_EQ(s.x, v1["alphas"].get<std::vector<double>>());
      EXPECT_EQ(s.y, v1["betas"].get<std::vector<double>>());
      EXPECT_EQ(s.z, v1["loss"].get<std::vector<std::vector<double>>>());
      ++landscapes;
    } else {
      ASSERT_TRUE(name == "confusion" || name == "confusion_test") << name;
      std::string v2_name = name == "confusion" ? "confusion/val" : "confusion/test";
      auto matrices = store->matrices(run_id, v2_name);
      ASSERT_EQ(matrices.size(), 1u) << run_id << " " << v2_name;
      EXPECT_EQ(matrices[0].epoch, epoch);
      auto labels = v1["labels"].get<std::vector<std::string>>();
      EXPECT_EQ(matrices[0].matrix.row_labels, labels);
      EXPECT_EQ(matrices[0].matrix.column_labels, labels);
      EXPECT_EQ(matrices[0].matrix.values, v1["matrix"].get<std::vector<std::vector<double>>>());
      ++confusions;
    }
  }
  EXPECT_EQ(landscapes, 6u);
  EXPECT_EQ(confusions, 13u);
  EXPECT_EQ(raw.value("SELECT count(*) FROM artifacts"), "19");

  // This smoke store has ~1.5 points per series and epoch, so packing gains nothing and the
  // four new tables' first pages (16 KiB) make it larger: 90112 -> 110592 bytes when written.
  // DenseSeriesShrinkOnMigration checks the size on a realistic per-step density.
  uintmax_t v2_size = disk_size();
  std::printf("[ store ] schema-1 fixture %ju bytes -> migrated %ju bytes\n", v1_size, v2_size);
  EXPECT_LT(v2_size, v1_size + 32 * 1024);
}

// Schema 1 as normlab wrote it until dc2b998 (src/store/store.cpp then).
constexpr const char* kSchemaV1 = R"sql(
PRAGMA journal_mode = WAL;
CREATE TABLE runs (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, grp TEXT NOT NULL, config_json TEXT NOT NULL,
  config_hash TEXT NOT NULL UNIQUE, seed INTEGER NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'running', 'complete', 'failed')),
  error TEXT NOT NULL DEFAULT '', wall_seconds REAL NOT NULL DEFAULT 0,
  epochs_done INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));
CREATE TABLE scalars (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('step', 'epoch')), name TEXT NOT NULL CHECK (name <> ''),
  step INTEGER NOT NULL, epoch INTEGER NOT NULL, value REAL);
CREATE INDEX scalars_by_series ON scalars(run_id, kind, name);
CREATE TABLE artifacts (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, name TEXT NOT NULL,
  json TEXT NOT NULL, PRIMARY KEY (run_id, name));
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
PRAGMA application_id = 1313620290;
PRAGMA user_version = 1;
)sql";

// Per-step gradient norms at a realistic density (300 steps per epoch, 12 layers): one v1 row
// per point becomes one v2 row per series and epoch, and the file shrinks.
TEST_F(MigrationTest, DenseSeriesShrinkOnMigration) {
  fs::remove(path_);
  {
    RawDb raw(path_, /*read_only=*/false);
    raw.exec(kSchemaV1);
    raw.exec("BEGIN");
    for (int run = 1; run <= 2; ++run) {
      raw.exec(
          "INSERT INTO runs (id, name, grp, config_json, config_hash, seed, epochs_done) "
          "VALUES (" +
          std::to_string(run) + ", 'r', 'g', '{}', 'h" + std::to_string(run) + "', 0, 3)");
      for (int epoch = 0; epoch < 3; ++epoch) {
        for (int step = epoch * 300; step < (epoch + 1) * 300; ++step) {
          for (int layer = 0; layer < 12; ++layer) {
            std::string value =
                (step == 7 && layer == 0) ? "NULL" : std::to_string(1e-3 * (step + layer));
            raw.exec("INSERT INTO scalars VALUES (" + std::to_string(run) +
                     ", 'step', 'grad_norm/features." + std::to_string(layer) + ".weight', " +
                     std::to_string(step) + ", " + std::to_string(epoch) + ", " + value + ")");
          }
        }
      }
    }
    raw.exec("COMMIT");
  }
  uintmax_t v1_size = disk_size();
  std::vector<Point> expected;
  {
    RawDb raw(path_);
    expected = v1_points(raw);
  }
  ASSERT_EQ(expected.size(), 2u * 3 * 300 * 12);

  auto store = Store::open(path_);
  RawDb raw(path_);
  EXPECT_EQ(v2_points(raw), expected);
  EXPECT_EQ(raw.value("SELECT count(*) FROM series"), std::to_string(2 * 3 * 12));
  auto gap = store->scalars(1, Axis::kStep, "grad_norm/features.0.weight");
  ASSERT_EQ(gap.size(), 900u);
  EXPECT_TRUE(std::isnan(gap[7].value));  // v1 NULL = NaN
  uintmax_t v2_size = disk_size();
  std::printf("[ store ] dense schema-1 store %ju bytes -> migrated %ju bytes\n", v1_size, v2_size);
  EXPECT_LT(v2_size, v1_size / 3);
}

TEST_F(MigrationTest, MigratedStoreIsWritableAndMigratesOnce) {
  {
    auto store = Store::open(path_);
    auto runs = store->runs();
    ASSERT_FALSE(runs.empty());
    const auto& run = runs.back();
    int64_t done = store->epochs_done(run.id);
    ASSERT_GE(done, 1);
    // A resumed run rewrites its last epoch: the migrated records of that epoch are dropped.
    EpochRecords again;
    again.epoch_scalars = {{"val/acc", done - 1, 0.5}};
    store->write_epoch(run.id, done - 1, again);
    EXPECT_TRUE(store->surfaces(run.id).empty());
    auto acc = store->scalars(run.id, Axis::kEpoch, "val/acc");
    ASSERT_FALSE(acc.empty());
    EXPECT_EQ(acc.back().value, 0.5);
  }
  auto before = read_file_bytes(path_);
  { Store::open(path_); }  // already schema 2: nothing to do
  RawDb raw(path_);
  EXPECT_EQ(raw.value("PRAGMA user_version"), "2");
  EXPECT_EQ(read_file_bytes(path_), before);
}

TEST_F(MigrationTest, UnknownArtifactsAreDroppedAndTrainEvalSplitNamed) {
  {
    RawDb raw(path_, /*read_only=*/false);
    raw.exec("INSERT INTO artifacts (run_id, name, json) VALUES (2, 'final_metrics', '{}')");
    raw.exec(
        "UPDATE artifacts SET json = json_set(json, '$.split', 'train_eval') "
        "WHERE run_id = 3 AND name = 'confusion'");
  }
  auto store = Store::open(path_);
  RawDb raw(path_);
  EXPECT_EQ(raw.value("SELECT count(*) FROM artifacts WHERE name = 'final_metrics'"), "0");
  EXPECT_EQ(store->matrices(3, "confusion/train_eval").size(), 1u);
  EXPECT_TRUE(store->matrices(3, "confusion/val").empty());
  EXPECT_EQ(store->matrices(3, "confusion/test").size(), 1u);
}

TEST_F(MigrationTest, FailedMigrationLeavesTheFileSchemaOne) {
  {
    RawDb raw(path_, /*read_only=*/false);
    // loss has 2 rows for 3 betas: not a landscape.
    raw.exec(
        "UPDATE artifacts SET json = '{\"alphas\":[0,1,2],\"betas\":[0,1,2],"
        "\"loss\":[[1,2,3],[4,5,6]]}' WHERE run_id = 4 AND name = 'landscape'");
  }
  auto before = read_file_bytes(path_);
  for (bool read_only : {false, true}) {
    expect_error([&] { Store::open(path_, {read_only}); },
                 {path_, "artifact 'landscape' of run 4", "2 rows but y has 3",
                  "left unchanged (still schema 1"});
  }
  EXPECT_EQ(read_file_bytes(path_), before);
  EXPECT_FALSE(fs::exists(path_ + "-wal") && fs::file_size(path_ + "-wal") > 0);
  RawDb raw(path_);
  EXPECT_EQ(raw.value("PRAGMA user_version"), "1");
  EXPECT_EQ(raw.value("SELECT count(*) FROM sqlite_master WHERE name IN ('scalars', "
                      "'artifacts', 'series')"),
            "2");
  EXPECT_EQ(raw.value("PRAGMA integrity_check"), "ok");
}

TEST_F(MigrationTest, ReadOnlyOpenMigratesACopyInMemory) {
  auto before = read_file_bytes(path_);
  {
    auto store = Store::open(path_, {/*read_only=*/true});
    auto runs = store->runs();
    ASSERT_EQ(runs.size(), 7u);
    EXPECT_FALSE(store->scalars(runs[1].id, Axis::kEpoch, "val/acc").empty());
    EXPECT_EQ(store->surfaces(runs[1].id, "landscape").size(), 1u);
    EXPECT_EQ(store->matrices(runs[1].id, "confusion/val").size(), 1u);
    expect_error([&] { store->set_meta("k", "v"); }, {path_, "read-only"});
  }
  EXPECT_EQ(read_file_bytes(path_), before);
  RawDb raw(path_);
  EXPECT_EQ(raw.value("PRAGMA user_version"), "1");
}

}  // namespace
}  // namespace normlab::store
