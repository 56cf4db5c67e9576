#include "data/splits.h"

#include <limits>
#include <tuple>

#include "core/error.h"

namespace normlab::data {
namespace {

Dataset empty_like(const Dataset& ds) { return subset(ds, torch::zeros({0}, torch::kLong)); }

Dataset limit(const Dataset& ds, int64_t n, uint64_t seed) {
  if (n <= 0 || n >= ds.size()) return ds;
  // A stratified subset keeps the class balance of the full set.
  double frac = 1.0 - static_cast<double>(n) / static_cast<double>(ds.size());
  auto split = stratified_split(ds.labels, ds.num_classes, frac, seed);
  return subset(ds, split.train);
}

// Splits `ds` into (rest, val) with val_fraction of it in val; all of it when fraction is 1.
std::pair<Dataset, Dataset> carve(const Dataset& ds, double fraction, uint64_t seed) {
  if (fraction <= 0) return {ds, empty_like(ds)};
  if (fraction >= 1) return {empty_like(ds), ds};
  auto split = stratified_split(ds.labels, ds.num_classes, fraction, seed);
  return {subset(ds, split.train), subset(ds, split.val)};
}

}  // namespace

void describe(SplitOptions& o, OptionFields& f) {
  const double inf = std::numeric_limits<double>::infinity();
  const Range at_least_zero{0, inf, ">= 0"};
  describe(o.train_source, f);
  o.test_source = o.train_source;
  o.test_source.train = false;
  f.field("classes", o.classes, at_least_zero, Empty::kAllowed);
  f.field("val_fraction", o.val_fraction, Range{0, 1, "in [0, 1]"});
  f.field("split_seed", o.split_seed);
  f.field("train_limit", o.train_limit, at_least_zero);
  f.field("val_limit", o.val_limit, at_least_zero);
  f.field("test", o.test);
  f.field("test_limit", o.test_limit, at_least_zero);
  f.field("val_from", o.val_from, {"train", "test", "same"});
  f.field("train_from", o.train_from, {"train", "test"});
}

Splits load_splits(const SplitOptions& d) {
  Splits out;
  if (d.train_from == "test") {
    require(d.val_from == "same", "data.train_from = \"test\"",
            "needs data.val_from = \"same\" (the test set is the only held-out data)");
    Dataset test = load_dataset(d.test_source);
    if (!d.classes.empty()) test = select_classes(test, d.classes);
    out.train = limit(test, d.train_limit, d.split_seed + 1);
    out.val = out.train;
    out.test = d.test ? out.train : empty_like(out.train);
    require(out.train.size() > 0, "data",
            "the training set is empty after class selection and limits");
    return out;
  }
  Dataset full = load_dataset(d.train_source);
  if (!d.classes.empty()) full = select_classes(full, d.classes);
  Dataset test;
  if (d.val_from == "same") {
    out.train = limit(full, d.train_limit, d.split_seed + 1);
    out.val = out.train;
    if (d.test) {
      test = load_dataset(d.test_source);
      if (!d.classes.empty()) test = select_classes(test, d.classes);
      out.test = limit(test, d.test_limit, d.split_seed + 3);
    }
    require(out.train.size() > 0, "data",
            "the training set is empty after class selection and limits");
    return out;
  }
  if (d.test || d.val_from == "test") {
    test = load_dataset(d.test_source);
    if (!d.classes.empty()) test = select_classes(test, d.classes);
  }
  if (d.val_from == "train") {
    full = limit(full, d.train_limit + d.val_limit, d.split_seed);
    std::tie(out.train, out.val) = carve(full, d.val_fraction, d.split_seed);
    if (d.test) out.test = test;
  } else {
    out.train = full;
    std::tie(out.test, out.val) = carve(test, d.val_fraction, d.split_seed);
    if (!d.test) out.test = empty_like(test);
  }
  out.train = limit(out.train, d.train_limit, d.split_seed + 1);
  out.val = limit(out.val, d.val_limit, d.split_seed + 2);
  if (out.test.images.defined()) out.test = limit(out.test, d.test_limit, d.split_seed + 3);
  require(out.train.size() > 0, "data",
          "the training set is empty after class selection and limits");
  return out;
}

}  // namespace normlab::data
