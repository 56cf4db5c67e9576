#include "study/run_interpolation.h"

#include <filesystem>

#include "core/error.h"
#include "data/batcher.h"
#include "io/state_dict.h"
#include "probe/landscape.h"
#include "store/store.h"
#include "study/feature_source.h"
#include "study/group_setup.h"
#include "study/run_options.h"
#include "study/run_paths.h"

namespace normlab::study {
namespace {

store::RunRecord find_run(const std::vector<store::RunRecord>& runs, const std::string& name,
                          const std::string& dir) {
  std::vector<const store::RunRecord*> hits;
  for (const auto& r : runs) {
    if (r.name == name) return r;
    if (r.name.find(name) != std::string::npos) hits.push_back(&r);
  }
  std::string all;
  for (const auto& r : runs) all += "\n    " + r.name;
  require(hits.size() == 1, "study '" + dir + "': run '" + name + "'",
          hits.empty() ? "matches no run" : "matches " + std::to_string(hits.size()) + " runs",
          "runs:" + all);
  return *hits.front();
}

Json architecture(const Json& config) {
  Json model = config.at("model");
  for (const char* k : {"weights", "weights_skip", "recalibrate_bn", "recalibrate_batches"}) {
    model.erase(k);
  }
  return model;
}

}  // namespace

RunInterpolation interpolate_runs(const RunInterpolationOptions& o) {
  require(o.points >= 2, "--points", "must be >= 2");
  require(o.lo < o.hi, "--range", "must be lo < hi");
  const std::string db_path = o.study_dir + "/study.db";
  require(std::filesystem::exists(db_path), "study '" + o.study_dir + "'", "has no study.db");
  auto db = store::Store::open(db_path, {/*read_only=*/true});
  const auto runs = db->runs();
  const store::RunRecord a = find_run(runs, o.from, o.study_dir);
  const store::RunRecord b = find_run(runs, o.to, o.study_dir);
  for (const auto* r : {&a, &b}) {
    require(r->status == store::RunStatus::kComplete, "run '" + r->name + "'",
            "is not complete: its final weights do not exist yet");
  }
  // A store written by an older normlab lacks keys added since: they take their defaults.
  auto config_of = [](const store::RunRecord& r) {
    Json c = default_run_config();
    merge_config(c, Json::parse(r.config_json), "run '" + r.name + "' (stored config)");
    return c;
  };
  const Json ca = config_of(a), cb = config_of(b);
  require(architecture(ca) == architecture(cb), "runs '" + a.name + "' and '" + b.name + "'",
          "have different model architectures: there is no line between their weights");

  RunOptions opt = run_options(ca, a.name);
  const data::Splits splits = data::load_splits(opt.data.split);
  models::Classifier model = build_run_model(opt, splits);
  model->eval();
  const io::StateDict wa =
      io::load_state_dict(RunPaths::of(o.study_dir, a.config_hash).final_weights());
  const io::StateDict wb =
      io::load_state_dict(RunPaths::of(o.study_dir, b.config_hash).final_weights());

  std::vector<torch::Tensor> all, from, to, params, params_from, params_to;
  auto add = [&](const std::string& name, const torch::Tensor& t, bool is_param) {
    const torch::Tensor* x = wa.find(name);
    const torch::Tensor* y = wb.find(name);
    require(x != nullptr && y != nullptr && x->sizes() == t.sizes() && y->sizes() == t.sizes(),
            "run weights", "'" + name + "' is missing or has another shape in one of the runs");
    all.push_back(t);
    from.push_back(x->to(t.scalar_type()));
    to.push_back(y->to(t.scalar_type()));
    if (is_param) {
      params.push_back(t);
      params_from.push_back(from.back());
      params_to.push_back(to.back());
    }
  };
  for (auto& p : model->named_parameters()) add(p.key(), p.value(), true);
  for (auto& bf : model->named_buffers()) {
    if (bf.value().is_floating_point()) add(bf.key(), bf.value(), false);
  }

  const data::Dataset* ds = o.split == "test"       ? &splits.test
                            : o.split == "train"    ? &splits.train
                            : splits.val.size() > 0 ? &splits.val
                                                    : &splits.train;
  require(ds->size() > 0, "--split " + o.split, "the run has no such split (or it is empty)");
  data::Batcher batcher(
      *ds, batcher_options(opt.data, ds->images.size(1), torch::kCPU, false, ds->size()), opt.seed);
  batcher.start_epoch(0);
  std::vector<data::Batch> batches;
  int64_t taken = 0;
  data::Batch batch;
  while ((o.images <= 0 || taken < o.images) && batcher.next(batch)) {
    if (o.images > 0 && taken + batch.y.size(0) > o.images) {
      batch.x = batch.x.narrow(0, 0, o.images - taken);
      batch.y = batch.y.narrow(0, 0, o.images - taken);
    }
    taken += batch.y.size(0);
    batches.push_back(batch);
  }

  RunInterpolation out;
  out.from = a.name;
  out.to = b.name;
  out.interpolated =
      probe::interpolation_curve(*model, all, from, to, batches, 0, o.points, o.lo, o.hi);
  {
    torch::NoGradGuard no_grad;
    for (size_t k = 0; k < all.size(); ++k) all[k].copy_(from[k]);  // A's statistics
  }
  out.a_stats = probe::interpolation_curve(*model, params, params_from, params_to, batches, 0,
                                           o.points, o.lo, o.hi);
  return out;
}

}  // namespace normlab::study
