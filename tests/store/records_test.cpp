#include "store/records.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "store/store_testing.h"

namespace normlab::store {
namespace {

using nlohmann::json;
using testing::expect_error;

Histogram valid_histogram() {
  Histogram h;
  h.edges = {0, 1, 2};
  h.counts = {3, 4};
  h.count = 7;
  return h;
}

Surface valid_surface() {
  Surface s;
  s.x = {0, 1, 2};
  s.y = {10, 20};
  s.z = {{0, 1, 2}, {3, 4, 5}};
  return s;
}

Matrix valid_matrix() {
  Matrix m;
  m.row_labels = {"a", "b"};
  m.column_labels = {"x", "y", "z"};
  m.values = {{1, 2, 3}, {4, 5, 6}};
  return m;
}

TEST(Records, AxisNames) {
  EXPECT_EQ(to_string(Axis::kStep), "step");
  EXPECT_EQ(to_string(Axis::kEpoch), "epoch");
  EXPECT_EQ(axis_from_string("step"), Axis::kStep);
  EXPECT_EQ(axis_from_string("epoch"), Axis::kEpoch);
  expect_error([] { axis_from_string("histogram"); }, {"histogram", "step", "epoch"});
}

TEST(Records, EpochRecordsAppendAndEmpty) {
  EpochRecords a;
  EXPECT_TRUE(a.empty());
  a.step_scalars.push_back({"x", 0, 1});
  EpochRecords b;
  b.step_scalars.push_back({"x", 1, 2});
  b.histograms.push_back({"h", Axis::kEpoch, 0, valid_histogram()});
  b.surfaces.push_back({"s", 0, valid_surface()});
  b.matrices.push_back({"m", 0, valid_matrix()});
  b.epoch_scalars.push_back({"e", 0, 3});
  a.append(std::move(b));
  EXPECT_FALSE(a.empty());
  ASSERT_EQ(a.step_scalars.size(), 2u);
  EXPECT_EQ(a.step_scalars[1].step, 1);
  EXPECT_EQ(a.epoch_scalars.size(), 1u);
  EXPECT_EQ(a.histograms.size(), 1u);
  EXPECT_EQ(a.surfaces.size(), 1u);
  EXPECT_EQ(a.matrices.size(), 1u);
}

TEST(Records, ValidateHistogram) {
  validate(valid_histogram(), "h");
  Histogram h = valid_histogram();
  h.counts.push_back(0);
  expect_error([&] { validate(h, "grad_hist/pre/fc"); },
               {"grad_hist/pre/fc", "3 bin edges but 3 counts"});
  h = valid_histogram();
  h.edges = {0, 2, 1};
  expect_error([&] { validate(h, "w"); }, {"w", "not strictly increasing"});
  h = valid_histogram();
  h.count = 8;
  expect_error([&] { validate(h, "w"); }, {"w", "sum to 7 but count is 8"});
  h = valid_histogram();
  h.scale = "log2";
  expect_error([&] { validate(h, "w"); }, {"w", "log2"});
  h = valid_histogram();
  h.edges[0] = -std::numeric_limits<double>::infinity();
  expect_error([&] { validate(h, "w"); }, {"w", "not finite"});
}

TEST(Records, ValidateSurfaceAndMatrix) {
  validate(valid_surface(), "s");
  Surface s = valid_surface();
  s.z.pop_back();
  expect_error([&] { validate(s, "landscape"); }, {"landscape", "1 rows but y has 2"});
  s = valid_surface();
  s.z[1].push_back(6);
  expect_error([&] { validate(s, "landscape"); }, {"landscape", "row 1 has 4 values"});
  s = valid_surface();
  s.x.clear();
  s.z = {{}, {}};
  expect_error([&] { validate(s, "landscape"); }, {"landscape", "must be >= 1"});

  validate(valid_matrix(), "m");
  Matrix m = valid_matrix();
  m.row_labels.pop_back();
  expect_error([&] { validate(m, "confusion/val"); }, {"confusion/val", "2 rows but 1 row"});
  m = valid_matrix();
  m.values[0].pop_back();
  expect_error([&] { validate(m, "confusion/val"); }, {"confusion/val", "row 0 has 2 values"});
}

TEST(Records, SurfaceJsonRoundTripsAndKeepsLayout) {
  Surface s = valid_surface();
  s.x_label = "alpha";
  s.z[0][1] = std::nan("");
  json j = to_json(s);
  // The serialised form: z is (Y, X), non-finite values are null.
  EXPECT_EQ(j["x"], json({0.0, 1.0, 2.0}));
  EXPECT_EQ(j["z"][1], json({3.0, 4.0, 5.0}));
  EXPECT_TRUE(j["z"][0][1].is_null());
  Surface back = surface_from_json(json::parse(j.dump()), "s");
  EXPECT_EQ(back.x_label, "alpha");
  EXPECT_EQ(back.y, s.y);
  EXPECT_TRUE(std::isnan(back.z[0][1]));
  EXPECT_EQ(back.z[1], s.z[1]);

  json bad = j;
  bad["z"] = json({{1, 2, 3}});
  expect_error([&] { surface_from_json(bad, "surface 'landscape' of run 3"); },
               {"surface 'landscape' of run 3", "1 rows but y has 2"});
  bad = j;
  bad.erase("y");
  expect_error([&] { surface_from_json(bad, "land"); }, {"land", "missing field 'y'"});
  bad = j;
  bad["x"][0] = "zero";
  expect_error([&] { surface_from_json(bad, "land"); }, {"land", "not a number"});
  expect_error([&] { surface_from_json(json::array(), "land"); }, {"land", "JSON object"});
}

TEST(Records, MatrixJsonRoundTripsAndKeepsLayout) {
  Matrix m = valid_matrix();
  json j = to_json(m);
  EXPECT_EQ(j["row_labels"], json({"a", "b"}));
  EXPECT_EQ(j["values"][1], json({4.0, 5.0, 6.0}));
  Matrix back = matrix_from_json(j, "m");
  EXPECT_EQ(back.row_labels, m.row_labels);
  EXPECT_EQ(back.column_labels, m.column_labels);
  EXPECT_EQ(back.values, m.values);

  json bad = j;
  bad["column_labels"] = json({"x", 2, "z"});
  expect_error([&] { matrix_from_json(bad, "confusion/val"); }, {"confusion/val", "not a string"});
  bad = j;
  bad["values"] = json({{1, 2, 3}});
  expect_error([&] { matrix_from_json(bad, "confusion/val"); },
               {"confusion/val", "1 rows but 2 row labels"});
}

}  // namespace
}  // namespace normlab::store
