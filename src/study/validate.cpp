#include "study/validate.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "data/splits.h"
#include "models/prefix.h"
#include "models/pretrained.h"
#include "study/engine_timing.h"
#include "study/feature_source.h"
#include "study/group_setup.h"
#include "study/plan_check.h"
#include "study/prefix_key.h"
#include "study/run_options.h"
#include "study/weights.h"
#include "train/loss.h"

namespace normlab::study {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The faster of two timed calls after a warm-up one: the first call allocates and picks
// oneDNN kernels, and the minimum is the steady state a long run sees.
template <typename F>
double time_call(F&& fn) {
  fn();
  double best = 1e30;
  for (int i = 0; i < 2; ++i) {
    const auto t0 = Clock::now();
    fn();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

bool registered(const std::string& ref) {
  const auto ids = models::pretrained_ids();
  return std::find(ids.begin(), ids.end(), ref) != ids.end();
}

// Checks that the run's weights exist and fit its model. A registered id not yet in the
// cache is not an error (the run downloads it): it becomes a note. Weights from the study's
// own pretraining do not exist yet.
void check_weights(const RunOptions& o, models::ClassifierImpl& model, const RunPlan& run,
                   std::vector<std::string>& notes) {
  if (o.weights.empty() || o.weights.rfind("pretrain", 0) == 0) return;
  if (registered(o.weights)) {
    const auto path = models::pretrained_cache_path(models::find_pretrained(o.weights));
    if (!fs::exists(path)) {
      const std::string note = "model.weights '" + o.weights + "' is not cached: the first run " +
                               "downloads it into " + path + " (needs internet)";
      if (std::find(notes.begin(), notes.end(), note) == notes.end()) notes.push_back(note);
      return;
    }
  }
  try {
    load_weights(model, o.weights, o.weights_skip, "");
  } catch (const Error& e) {
    throw Error("run '" + run.name + "'", e.what());
  }
}

GroupEstimate estimate_group(const std::vector<const RunPlan*>& runs, bool measure,
                             std::vector<std::string>& notes) {
  const RunPlan& lead_plan = *runs.front();
  const RunOptions o = run_options(lead_plan.config, lead_plan.name);
  GroupEstimate g;
  for (const auto* r : runs) {
    g.runs.push_back(r->name);
    g.epochs = std::max(g.epochs, run_options(r->config, r->name).train.epochs);
  }
  data::Splits splits;
  try {
    splits = data::load_splits(o.data.split);
  } catch (const Error& e) {
    throw Error("run '" + lead_plan.name + "'", e.what());
  }
  g.train_images = splits.train.size();
  g.val_images = splits.val.size();
  g.test_images = splits.test.size();
  g.batch = o.data.train_batch(g.train_images);
  g.steps_per_epoch = (g.train_images + g.batch - 1) / g.batch;

  models::Classifier model = build_run_model(o, splits);
  check_weights(o, *model, lead_plan, notes);
  g.stages = model->num_stages();
  g.cut = run_cut(*model, o.phases);
  const std::string refusal = feature_cache_refusal(o, *model, g.cut);
  g.cached = o.data.feature_cache != "off" && refusal.empty();
  if (!g.cached && g.cut > 0) {
    g.uncached_reason = o.data.feature_cache == "off" ? "data.feature_cache = \"off\"" : refusal;
  }
  if (!measure) return g;

  // One batch of the run's input shape; a full-batch run is measured on up to 256 images and
  // scaled per image (its cost is linear in the images of its one step).
  const int64_t hw = o.data.resize > 0 ? o.data.resize : splits.train.images.size(2);
  const int64_t b = std::min<int64_t>(g.batch, 256);
  torch::Tensor x = torch::rand({b, splits.train.images.size(1), hw, hw});
  torch::Tensor y = torch::randint(splits.train.num_classes, {b}, torch::kLong);
  torch::Tensor h = x;
  if (g.cut > 0) {
    torch::NoGradGuard no_grad;
    model->eval();
    g.prefix_seconds_per_image =
        time_call([&] { h = models::run_prefix(*model, x, g.cut); }) / static_cast<double>(b);
  }
  h = h.detach();
  model->train();
  const double step = time_call([&] {
    model->zero_grad();
    train::cross_entropy(model->forward_from(h, g.cut), y, 0.0).backward();
  });
  g.tail_step_seconds = step * static_cast<double>(g.batch) / static_cast<double>(b);
  {
    torch::NoGradGuard no_grad;
    model->eval();
    g.tail_eval_seconds_per_image =
        time_call([&] { (void)model->forward_from(h, g.cut); }) / static_cast<double>(b);
  }

  const auto runs_n = static_cast<double>(runs.size());
  const auto epochs = static_cast<double>(g.epochs);
  const double p = g.prefix_seconds_per_image, e = g.tail_eval_seconds_per_image;
  const auto train_n = static_cast<double>(g.train_images);
  const auto val_n = static_cast<double>(g.val_images);
  const auto test_n = static_cast<double>(g.test_images);
  const double steps = static_cast<double>(g.steps_per_epoch) * epochs;
  // Runs of a group share the prefix (once per batch, or once per image with the cache);
  // each run pays its own tail steps and evaluations.
  double prefix_total;
  if (g.cached) {
    const double views = o.data.augment.hflip ? 2.0 : 1.0;
    prefix_total = p * (train_n * views + val_n + test_n);
  } else {
    prefix_total = p * (train_n * epochs + val_n * epochs + test_n);
  }
  const double tails = runs_n * (g.tail_step_seconds * steps + e * (val_n * epochs + test_n));
  g.seconds = prefix_total + tails;
  return g;
}

}  // namespace

Validation validate_plan(const Plan& plan, const std::string& where, bool measure) {
  check_plan(plan, where);
  Validation v;
  v.study = plan.study_name;
  for (const auto& p : plan.pretrains) v.groups.push_back(estimate_group({&p}, measure, v.notes));
  // Lockstep groups in order of first appearance, as the runner forms them.
  std::vector<std::string> keys;
  std::map<std::string, std::vector<const RunPlan*>> groups;
  for (const auto& run : plan.runs) {
    const std::string key = group_key(run.config);
    if (groups.find(key) == groups.end()) keys.push_back(key);
    groups[key].push_back(&run);
  }
  for (const auto& key : keys) v.groups.push_back(estimate_group(groups[key], measure, v.notes));
  for (const auto& g : v.groups) v.seconds += g.seconds;
  return v;
}

}  // namespace normlab::study
