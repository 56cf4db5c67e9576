#include "study/run_metrics.h"

#include "core/error.h"
#include "store/metric_names.h"

namespace normlab::study {
namespace metric = store::metric;

void record_eval(train::Recorder& rec, const train::EvalResult& r, const std::string& split,
                 int64_t epoch) {
  const double values[] = {r.loss, r.accuracy, r.macro_sensitivity, r.macro_specificity,
                           r.macro_f1};
  for (size_t i = 0; i < metric::kEvalNames.size(); ++i) {
    rec.epoch_value(metric::eval(split, metric::kEvalNames[i]), epoch, values[i]);
  }
}

store::Matrix confusion(const train::EvalResult& r, const std::vector<std::string>& labels) {
  store::Matrix m;
  m.row_labels = labels;
  m.column_labels = labels;
  auto c = r.confusion.to(torch::kDouble).contiguous();
  for (int64_t i = 0; i < c.size(0); ++i) {
    m.values.emplace_back(c[i].data_ptr<double>(), c[i].data_ptr<double>() + c.size(1));
  }
  return m;
}

double monitored(const std::string& name, const train::EpochStats& stats,
                 const train::EvalResult& val) {
  if (name == metric::kTrainLoss) return stats.loss;
  if (name == metric::kTrainAcc) return stats.accuracy;
  if (name == "val/loss") return val.loss;
  if (name == "val/acc") return val.accuracy;
  if (name == "val/macro_f1") return val.macro_f1;
  throw Error("monitor '" + name + "'", "unknown metric");
}

}  // namespace normlab::study
