// The typed records a run produces, shared by their writers (trainer, probes, study engine)
// and their readers (report, dashboard, tests): one struct per kind, so no layout is agreed by
// convention. Kinds: scalar series (per step or per epoch), histograms, surfaces (2-D grids,
// e.g. loss landscapes) and matrices (e.g. confusion). Histograms, surfaces and matrices carry
// the epoch that wrote them, so a run resumed from an earlier checkpoint drops stale ones.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace normlab::store {

// The x axis of a series: the run's global step, or its epoch.
enum class Axis { kStep, kEpoch };
std::string to_string(Axis axis);
Axis axis_from_string(const std::string& text);

struct ScalarPoint {
  std::string name;  // e.g. "train/loss", "grad_norm/features.3.0.weight"
  int64_t step = 0;  // global step (per-step series) or epoch (per-epoch series)
  double value = 0;  // NaN allowed
};

// A histogram over fixed bin edges. The first and last bins are open-ended: finite values
// below edges.front() are counted in bin 0 and values above edges.back() in the last bin, so
// sum(counts) == count; min and max tell how far the tails reach. With scale "log10" the
// edges are log10 of the magnitude (|x|; exact zeros land in bin 0) and min/max/mean/std are
// still statistics of the raw values.
struct Histogram {
  std::string scale = "linear";                // "linear" or "log10"
  std::vector<double> edges;                   // bins + 1, strictly increasing
  std::vector<int64_t> counts;                 // bins
  int64_t count = 0;                           // finite values (all in counts)
  int64_t nonfinite = 0;                       // NaN and +-Inf values, not in counts
  double min = 0, max = 0, mean = 0, std = 0;  // of the finite values (population std)
};

struct HistogramPoint {
  std::string name;  // e.g. "grad_hist/pre/head.0.weight"
  Axis axis = Axis::kEpoch;
  int64_t step = 0;  // global step or epoch, by axis
  Histogram hist;
};

// A function of two variables on a grid: z[i][j] = f(x[j], y[i]) (row = y, as Plotly draws it).
struct Surface {
  std::string x_label = "x", y_label = "y", z_label = "z";
  std::vector<double> x;               // (X)
  std::vector<double> y;               // (Y)
  std::vector<std::vector<double>> z;  // (Y, X)
};

// A labelled square or rectangular matrix, e.g. a confusion matrix: rows = true class,
// columns = predicted class.
struct Matrix {
  std::vector<std::string> row_labels;
  std::vector<std::string> column_labels;
  std::vector<std::vector<double>> values;  // (rows, columns)
};

struct SurfaceRecord {
  std::string name;  // e.g. "landscape"
  int64_t epoch = 0;
  Surface surface;
};

struct MatrixRecord {
  std::string name;  // e.g. "confusion/val"
  int64_t epoch = 0;
  Matrix matrix;
};

// Everything one epoch of one run adds to the store, written in one transaction.
struct EpochRecords {
  std::vector<ScalarPoint> step_scalars;
  std::vector<ScalarPoint> epoch_scalars;
  std::vector<HistogramPoint> histograms;
  std::vector<SurfaceRecord> surfaces;
  std::vector<MatrixRecord> matrices;
  bool empty() const;
  void append(EpochRecords other);
};

// Checks a record's shape; throws Error naming `what` (e.g. the record's name) when the
// sizes disagree (edges vs counts, z vs x/y, rows vs labels).
void validate(const Histogram& h, const std::string& what);
void validate(const Surface& s, const std::string& what);
void validate(const Matrix& m, const std::string& what);

// The one serialised form of surfaces and matrices (the store keeps them as JSON text):
//   Surface {"x_label", "y_label", "z_label", "x": [X], "y": [Y], "z": [Y][X]}
//   Matrix  {"row_labels": [R], "column_labels": [C], "values": [R][C]}
// JSON has no NaN or infinity: non-finite values are written as null and read back as NaN.
// *_from_json check the layout (validate) and throw Error naming `what`.
nlohmann::json to_json(const Surface& s);
Surface surface_from_json(const nlohmann::json& j, const std::string& what);
nlohmann::json to_json(const Matrix& m);
Matrix matrix_from_json(const nlohmann::json& j, const std::string& what);

}  // namespace normlab::store
