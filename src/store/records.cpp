#include "store/records.h"

#include <cmath>
#include <iterator>
#include <limits>
#include <utility>

#include "core/error.h"

namespace normlab::store {
namespace {

using nlohmann::json;

template <typename T>
void move_append(std::vector<T>& to, std::vector<T>& from) {
  if (to.empty()) {
    to = std::move(from);
    return;
  }
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

std::string size_text(size_t n) { return std::to_string(n); }

// JSON has no NaN or infinity: non-finite values are written as null and read back as NaN.
json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

double number_from_json(const json& j, const std::string& what, const std::string& field) {
  if (j.is_null()) return std::numeric_limits<double>::quiet_NaN();
  require(j.is_number(), what, "'" + field + "' holds " + j.dump() + ", not a number");
  return j.get<double>();
}

const json& field(const json& j, const char* key, const std::string& what) {
  require(j.is_object(), what, "expected a JSON object, got " + std::string(j.type_name()));
  auto it = j.find(key);
  require(it != j.end(), what, std::string("missing field '") + key + "'");
  return *it;
}

std::vector<double> numbers(const json& j, const std::string& what, const std::string& name) {
  require(j.is_array(), what, "'" + name + "' is not an array");
  std::vector<double> out;
  out.reserve(j.size());
  for (const auto& v : j) out.push_back(number_from_json(v, what, name));
  return out;
}

std::vector<std::vector<double>> rows(const json& j, const std::string& what,
                                      const std::string& name) {
  require(j.is_array(), what, "'" + name + "' is not an array of rows");
  std::vector<std::vector<double>> out;
  out.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    out.push_back(numbers(j[i], what, name + "[" + std::to_string(i) + "]"));
  }
  return out;
}

std::vector<std::string> strings(const json& j, const std::string& what, const std::string& name) {
  require(j.is_array(), what, "'" + name + "' is not an array");
  std::vector<std::string> out;
  out.reserve(j.size());
  for (const auto& v : j) {
    require(v.is_string(), what, "'" + name + "' holds " + v.dump() + ", not a string");
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::string label(const json& j, const char* key, const std::string& what) {
  const json& v = field(j, key, what);
  require(v.is_string(), what, std::string("'") + key + "' is not a string");
  return v.get<std::string>();
}

json rows_to_json(const std::vector<std::vector<double>>& values) {
  json out = json::array();
  for (const auto& row : values) {
    json r = json::array();
    for (double v : row) r.push_back(number_or_null(v));
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

std::string to_string(Axis axis) { return axis == Axis::kStep ? "step" : "epoch"; }

Axis axis_from_string(const std::string& text) {
  if (text == "step") return Axis::kStep;
  if (text == "epoch") return Axis::kEpoch;
  throw Error("axis '" + text + "'", "unknown series axis", "use \"step\" or \"epoch\"");
}

bool EpochRecords::empty() const {
  return step_scalars.empty() && epoch_scalars.empty() && histograms.empty() && surfaces.empty() &&
         matrices.empty();
}

void EpochRecords::append(EpochRecords other) {
  move_append(step_scalars, other.step_scalars);
  move_append(epoch_scalars, other.epoch_scalars);
  move_append(histograms, other.histograms);
  move_append(surfaces, other.surfaces);
  move_append(matrices, other.matrices);
}

void validate(const Histogram& h, const std::string& what) {
  require(h.scale == "linear" || h.scale == "log10", what,
          "histogram scale '" + h.scale + "' is unknown", "use \"linear\" or \"log10\"");
  require(h.edges.size() >= 2, what,
          "histogram has " + size_text(h.edges.size()) + " bin edges; at least 2 are needed");
  require(h.counts.size() + 1 == h.edges.size(), what,
          "histogram has " + size_text(h.edges.size()) + " bin edges but " +
              size_text(h.counts.size()) + " counts (expected edges = counts + 1)");
  for (size_t i = 0; i < h.edges.size(); ++i) {
    require(std::isfinite(h.edges[i]), what,
            "histogram bin edge " + size_text(i) + " is not finite");
    require(i == 0 || h.edges[i] > h.edges[i - 1], what,
            "histogram bin edges are not strictly increasing at index " + size_text(i));
  }
  int64_t sum = 0;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    require(h.counts[i] >= 0, what, "histogram count " + size_text(i) + " is negative");
    sum += h.counts[i];
  }
  require(sum == h.count, what,
          "histogram counts sum to " + std::to_string(sum) + " but count is " +
              std::to_string(h.count) + " (every finite value is in a bin)");
  require(h.nonfinite >= 0, what, "histogram nonfinite count is negative");
}

void validate(const Surface& s, const std::string& what) {
  require(!s.x.empty() && !s.y.empty(), what,
          "surface grid is " + size_text(s.y.size()) + " x " + size_text(s.x.size()) +
              " (y x x); both sizes must be >= 1");
  for (size_t j = 0; j < s.x.size(); ++j) {
    require(std::isfinite(s.x[j]), what, "surface x[" + size_text(j) + "] is not finite");
  }
  for (size_t i = 0; i < s.y.size(); ++i) {
    require(std::isfinite(s.y[i]), what, "surface y[" + size_text(i) + "] is not finite");
  }
  require(s.z.size() == s.y.size(), what,
          "surface z has " + size_text(s.z.size()) + " rows but y has " + size_text(s.y.size()) +
              " values (z is (Y, X): one row per y)");
  for (size_t i = 0; i < s.z.size(); ++i) {
    require(s.z[i].size() == s.x.size(), what,
            "surface z row " + size_text(i) + " has " + size_text(s.z[i].size()) +
                " values but x has " + size_text(s.x.size()) + " (z is (Y, X))");
  }
}

void validate(const Matrix& m, const std::string& what) {
  require(!m.row_labels.empty() && !m.column_labels.empty(), what,
          "matrix has " + size_text(m.row_labels.size()) + " row labels and " +
              size_text(m.column_labels.size()) + " column labels; both must be >= 1");
  require(m.values.size() == m.row_labels.size(), what,
          "matrix has " + size_text(m.values.size()) + " rows but " +
              size_text(m.row_labels.size()) + " row labels");
  for (size_t i = 0; i < m.values.size(); ++i) {
    require(m.values[i].size() == m.column_labels.size(), what,
            "matrix row " + size_text(i) + " has " + size_text(m.values[i].size()) +
                " values but there are " + size_text(m.column_labels.size()) + " column labels");
  }
}

json to_json(const Surface& s) {
  json x = json::array(), y = json::array();
  for (double v : s.x) x.push_back(number_or_null(v));
  for (double v : s.y) y.push_back(number_or_null(v));
  return {{"x_label", s.x_label}, {"y_label", s.y_label}, {"z_label", s.z_label},
          {"x", std::move(x)},    {"y", std::move(y)},    {"z", rows_to_json(s.z)}};
}

Surface surface_from_json(const json& j, const std::string& what) {
  Surface s;
  s.x_label = label(j, "x_label", what);
  s.y_label = label(j, "y_label", what);
  s.z_label = label(j, "z_label", what);
  s.x = numbers(field(j, "x", what), what, "x");
  s.y = numbers(field(j, "y", what), what, "y");
  s.z = rows(field(j, "z", what), what, "z");
  validate(s, what);
  return s;
}

json to_json(const Matrix& m) {
  return {{"row_labels", m.row_labels},
          {"column_labels", m.column_labels},
          {"values", rows_to_json(m.values)}};
}

Matrix matrix_from_json(const json& j, const std::string& what) {
  Matrix m;
  m.row_labels = strings(field(j, "row_labels", what), what, "row_labels");
  m.column_labels = strings(field(j, "column_labels", what), what, "column_labels");
  m.values = rows(field(j, "values", what), what, "values");
  validate(m, what);
  return m;
}

}  // namespace normlab::store
