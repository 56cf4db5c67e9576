#include "study/lockstep.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "data/augment.h"
#include "data/registry.h"
#include "models/recalibrate.h"
#include "nn/norm.h"
#include "probe/grad_norms.h"
#include "probe/landscape.h"
#include "study/feature_cache.h"
#include "study/run_options.h"
#include "study/weights.h"
#include "train/autocast.h"
#include "train/guards.h"
#include "train/params.h"

namespace normlab::study {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

nlohmann::json EngineTiming::to_json() const {
  return {{"setup_seconds", setup_seconds}, {"train_seconds", train_seconds},
          {"train_samples", train_samples}, {"eval_seconds", eval_seconds},
          {"eval_samples", eval_samples},   {"cache_seconds", cache_seconds},
          {"cache_images", cache_images}};
}

std::string group_key(const Json& config) {
  // Everything that decides the batches and the frozen prefix's output. The head, optimizer,
  // clipping, schedules and probes may differ inside a group.
  Json model = config.at("model");
  model.erase("head");
  const Json& t = config.at("train");
  Json key = {{"role", config.value("role", "run")},
              {"seed", config.at("seed")},
              {"device", config.at("device")},
              {"data", config.at("data")},
              {"model", model},
              {"train",
               {{"trainable", t.at("trainable")},
                {"frozen_bn", t.at("frozen_bn")},
                {"batch_size", t.at("batch_size")},
                {"eval_batch_size", t.at("eval_batch_size")},
                {"tta", t.at("tta")},
                {"precision", t.at("precision")}}}};
  return key.dump();
}

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct RunData {
  data::Dataset train;
  data::Dataset val;
  data::Dataset test;  // size 0 when data.test = false
};

data::Dataset limit(const data::Dataset& ds, int64_t n, uint64_t seed) {
  if (n <= 0 || n >= ds.size()) return ds;
  // A stratified subset keeps the class balance of the full set.
  double frac = 1.0 - static_cast<double>(n) / static_cast<double>(ds.size());
  auto split = data::stratified_split(ds.labels, ds.num_classes, frac, seed);
  return data::subset(ds, split.train);
}

// Splits `ds` into (rest, val) with val_fraction of it in val; all of it when fraction is 1.
std::pair<data::Dataset, data::Dataset> carve(const data::Dataset& ds, double fraction,
                                              uint64_t seed) {
  if (fraction <= 0) return {ds, data::subset(ds, torch::zeros({0}, torch::kLong))};
  if (fraction >= 1) return {data::subset(ds, torch::zeros({0}, torch::kLong)), ds};
  auto split = data::stratified_split(ds.labels, ds.num_classes, fraction, seed);
  return {data::subset(ds, split.train), data::subset(ds, split.val)};
}

RunData load_run_data(const DataSlice& d) {
  RunData out;
  data::Dataset full = data::load_dataset(d.train_source);
  if (!d.classes.empty()) full = data::select_classes(full, d.classes);
  data::Dataset test;
  if (d.test || d.val_from == "test") {
    test = data::load_dataset(d.test_source);
    if (!d.classes.empty()) test = data::select_classes(test, d.classes);
  }
  if (d.val_from == "train") {
    full = limit(full, d.train_limit + d.val_limit, d.split_seed);
    std::tie(out.train, out.val) = carve(full, d.val_fraction, d.split_seed);
    if (d.test) out.test = test;
  } else {
    out.train = full;
    std::tie(out.test, out.val) = carve(test, d.val_fraction, d.split_seed);
    if (!d.test) out.test = data::subset(test, torch::zeros({0}, torch::kLong));
  }
  out.train = limit(out.train, d.train_limit, d.split_seed + 1);
  out.val = limit(out.val, d.val_limit, d.split_seed + 2);
  if (out.test.images.defined()) out.test = limit(out.test, d.test_limit, d.split_seed + 3);
  require(out.train.size() > 0, "data",
          "the training set is empty after class selection and limits");
  return out;
}

data::BatcherOptions batcher_options(const DataSlice& d, int64_t channels, torch::Device device,
                                     bool training) {
  data::BatcherOptions b;
  b.batch_size = training ? d.batch_size : d.eval_batch_size;
  b.shuffle = training;
  b.drop_last = false;
  if (training) b.augment = d.augment;
  b.resize = d.resize;
  auto preset = data::normalize_preset(d.normalize, channels);
  b.mean = preset.mean;
  b.stddev = preset.stddev;
  b.device = device;
  return b;
}

void record_eval(train::Recorder& rec, const train::EvalResult& r, int64_t epoch) {
  rec.epoch_value(r.split + "/loss", epoch, r.loss);
  rec.epoch_value(r.split + "/acc", epoch, r.accuracy);
  rec.epoch_value(r.split + "/macro_sensitivity", epoch, r.macro_sensitivity);
  rec.epoch_value(r.split + "/macro_specificity", epoch, r.macro_specificity);
  rec.epoch_value(r.split + "/macro_f1", epoch, r.macro_f1);
}

nlohmann::json confusion_json(const train::EvalResult& r, const std::vector<std::string>& labels) {
  nlohmann::json m = nlohmann::json::array();
  auto c = r.confusion.to(torch::kLong).contiguous();
  for (int64_t i = 0; i < c.size(0); ++i) {
    nlohmann::json row = nlohmann::json::array();
    for (int64_t j = 0; j < c.size(1); ++j) row.push_back(c[i][j].item<int64_t>());
    m.push_back(row);
  }
  return {{"split", r.split}, {"labels", labels}, {"matrix", m}};
}

std::vector<store::ScalarPoint> to_points(const std::vector<train::ScalarRow>& rows) {
  std::vector<store::ScalarPoint> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back({r.name, r.step, r.value});
  return out;
}

// Conv weights in NHWC: oneDNN's fast layout on CPU, tensor cores' on CUDA (STYLE.md rule 5:
// one helper).
void to_channels_last(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters()) {
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
  }
}

// Copies the parameters and buffers of stages [0, cut) from `from` to `to` (same
// architecture): the shared prefix's state, e.g. BN running statistics it updated.
void copy_prefix(models::Classifier& from, models::Classifier& to, int64_t cut, bool buffers_only) {
  torch::NoGradGuard no_grad;
  auto copy = [&](const torch::OrderedDict<std::string, torch::Tensor>& src,
                  torch::OrderedDict<std::string, torch::Tensor> dst) {
    for (const auto& item : src) {
      if (from->stage_of(item.key()) >= cut) continue;
      dst[item.key()].copy_(item.value());
    }
  };
  if (!buffers_only) copy(from->named_parameters(), to->named_parameters());
  copy(from->named_buffers(), to->named_buffers());
}

// The first stage holding a trainable parameter: everything before it is the shared prefix.
int64_t cut_point(models::Classifier& model, const std::vector<std::string>& trainable) {
  if (trainable.empty()) return 0;
  int64_t cut = model->num_stages();
  for (const auto& p : model->named_parameters()) {
    for (const auto& pattern : trainable) {
      if (train::pattern_matches(pattern, p.key())) {
        cut = std::min(cut, model->stage_of(p.key()));
        break;
      }
    }
  }
  return cut;
}

bool prefix_has_batch_norm(models::Classifier& model, int64_t cut) {
  for (const auto& item : model->named_modules()) {
    if (nn::is_batch_norm(*item.value()) && model->stage_of(item.key()) < cut) return true;
  }
  return false;
}

double monitored(const std::string& name, const train::EpochStats& stats,
                 const train::EvalResult& val) {
  if (name == "train/loss") return stats.loss;
  if (name == "train/acc") return stats.accuracy;
  if (name == "val/loss") return val.loss;
  if (name == "val/acc") return val.accuracy;
  if (name == "val/macro_f1") return val.macro_f1;
  throw Error("monitor '" + name + "'", "unknown metric",
              "valid: val/loss, val/acc, val/macro_f1, train/loss, train/acc");
}

std::string model_state_bytes(torch::nn::Module& model) {
  torch::serialize::OutputArchive archive;
  model.save(archive);
  std::ostringstream os;
  archive.save_to(os);
  return os.str();
}

void load_model_state(torch::nn::Module& model, const std::string& bytes,
                      const std::string& source) {
  torch::serialize::InputArchive archive;
  try {
    std::istringstream is(bytes);
    archive.load_from(is);
    model.load(archive);
  } catch (const c10::Error& e) {
    throw Error(source,
                "not a readable weights archive (" + std::string(e.what_without_backtrace()) + ")",
                "delete it; the run restarts from its last checkpoint without a best-weights copy");
  }
}

// One run of the group.
struct Member {
  GroupMember ref;
  RunOptions o;
  std::string dir;
  models::Classifier model{nullptr};
  std::unique_ptr<train::Trainer> trainer;
  std::unique_ptr<probe::GradNormProbe> grad_probe;
  std::unique_ptr<train::LrSchedule> schedule;
  std::unique_ptr<train::EarlyStopping> stopper;
  std::string best_state;  // model archive bytes of the best epoch (early stopping)
  int64_t start_epoch = 0;
  int64_t epochs_done = 0;
  bool done = false;  // finished, stopped early or failed
  bool failed = false;
  Clock::time_point started = Clock::now();
  train::EpochStats stats;
  train::EvalResult val;
};

// Produces what the tails consume: prefix outputs of augmented batches (from the images,
// or from the feature cache) and their targets.
class Source {
 public:
  virtual ~Source() = default;
  virtual int64_t batches_per_epoch() const = 0;
  virtual void start_epoch(int64_t epoch) = 0;
  // h: prefix output; h_flip: of the mirrored images (only when `want_flip`).
  virtual bool next(torch::Tensor& h, torch::Tensor* h_flip, train::Targets& t) = 0;
};

class TrunkSource : public Source {
 public:
  TrunkSource(data::Batcher batcher, models::Classifier prefix, int64_t cut, bool channels_last)
      : batcher_(std::move(batcher)),
        prefix_(std::move(prefix)),
        cut_(cut),
        channels_last_(channels_last) {}
  int64_t batches_per_epoch() const override { return batcher_.batches_per_epoch(); }
  void start_epoch(int64_t epoch) override { batcher_.start_epoch(epoch); }
  bool next(torch::Tensor& h, torch::Tensor* h_flip, train::Targets& t) override {
    data::Batch b;
    if (!batcher_.next(b)) return false;
    torch::Tensor x =
        channels_last_ && b.x.dim() == 4 ? b.x.contiguous(torch::MemoryFormat::ChannelsLast) : b.x;
    {
      // The prefix is frozen: no graph. (NoGradGuard rather than InferenceMode: the tails
      // save these tensors for their backward pass, which inference tensors forbid.)
      torch::NoGradGuard no_grad;
      h = run_prefix(prefix_, x, cut_).contiguous();
      if (h_flip != nullptr) *h_flip = run_prefix(prefix_, x.flip(3), cut_).contiguous();
    }
    t = train::Targets{b.y, b.y2, b.lam};
    return true;
  }

 private:
  data::Batcher batcher_;
  models::Classifier prefix_;
  int64_t cut_;
  bool channels_last_;
};

class CacheSource : public Source {
 public:
  CacheSource(std::shared_ptr<io::FeatureFile> file, torch::Tensor labels, int64_t batch_size,
              bool training, bool random_flip, uint64_t seed, torch::Device device)
      : file_(std::move(file)),
        labels_(labels.to(device)),
        batch_size_(batch_size),
        training_(training),
        random_flip_(random_flip),
        seed_(seed),
        device_(device) {}
  int64_t batches_per_epoch() const override {
    return (file_->spec().items + batch_size_ - 1) / batch_size_;
  }
  void start_epoch(int64_t epoch) override {
    const int64_t n = file_->spec().items;
    cursor_ = 0;
    if (!training_) {
      order_ = torch::arange(n, torch::kLong);
      views_ = torch::zeros({n}, torch::kLong);
      return;
    }
    torch::Generator gen = make_generator(data::epoch_seed(seed_, epoch));
    order_ = torch::randperm(n, gen, torch::kLong);
    views_ = random_flip_ ? torch::randint(0, 2, {n}, gen, torch::kLong)
                          : torch::zeros({n}, torch::kLong);
  }
  bool next(torch::Tensor& h, torch::Tensor* h_flip, train::Targets& t) override {
    const int64_t n = file_->spec().items;
    if (cursor_ >= n) return false;
    const int64_t end = std::min(n, cursor_ + batch_size_);
    torch::Tensor idx = order_.slice(0, cursor_, end);
    h = file_->gather(idx, views_.slice(0, cursor_, end), device_);
    if (h_flip != nullptr) h_flip->operator=(file_->gather(idx, torch::ones_like(idx), device_));
    t = train::Targets{labels_.index_select(0, idx.to(device_)), {}, {}};
    cursor_ = end;
    return true;
  }

 private:
  std::shared_ptr<io::FeatureFile> file_;
  torch::Tensor labels_;
  int64_t batch_size_;
  bool training_;
  bool random_flip_;
  uint64_t seed_;
  torch::Device device_;
  torch::Tensor order_, views_;
  int64_t cursor_ = 0;
};

class Group {
 public:
  Group(const std::vector<GroupMember>& members, store::Store& db, const RunnerOptions& options,
        StudyResult& result, EngineTiming& timing)
      : db_(db), options_(options), result_(result), timing_(timing) {
    for (const auto& m : members) {
      auto member = std::make_unique<Member>();
      member->ref = m;
      member->o = run_options(m.plan->config, m.plan->name);
      member->dir = run_dir(options.out_dir, m.record.config_hash);
      members_.push_back(std::move(member));
    }
  }

  void run() {
    auto t0 = Clock::now();
    setup();
    timing_.setup_seconds += seconds_since(t0);
    finish_resumed();
    int64_t first = members_.front()->start_epoch;
    int64_t last = 0;
    for (auto& m : members_) {
      first = std::min(first, m->start_epoch);
      last = std::max(last, m->o.train.epochs);
    }
    for (int64_t epoch = first; epoch < last; ++epoch) {
      std::vector<Member*> active;
      for (auto& m : members_) {
        if (!m->done && m->start_epoch <= epoch && epoch < m->o.train.epochs) {
          active.push_back(m.get());
        }
      }
      if (active.empty()) break;
      train_epoch(active, epoch);
      end_epoch(active, epoch);
    }
  }

 private:
  const RunOptions& lead() const { return members_.front()->o; }

  void fail(Member& m, const std::string& message) {
    m.done = true;
    m.failed = true;
    db_.set_status(m.ref.record.id, store::RunStatus::kFailed, message);
    ++result_.failed;
    result_.failures.push_back(m.ref.plan->name + ": " + message);
    log::error(m.ref.plan->name, " failed: ", message);
  }

  models::Classifier build(const RunOptions& o) {
    models::ModelOptions mo = o.model;
    mo.in_channels = data_.train.images.size(1);
    mo.input_hw = o.data.resize > 0 ? o.data.resize : data_.train.images.size(2);
    mo.num_classes = data_.train.num_classes;
    apply_seed(o.seed);  // the same initial weights as the run trained alone
    models::Classifier model = models::build_model(mo);
    if (!o.weights.empty()) load_weights(*model, o.weights, o.weights_skip, options_.out_dir);
    model->to(device_);
    return model;
  }

  void setup() {
    const RunOptions& o = lead();
    device_ = parse_device(o.device);
    data_ = load_run_data(o.data);
    channels_ = data_.train.images.size(1);

    // The shared prefix holder: built like every member, never trained.
    prefix_ = build(o);
    cut_ = cut_point(prefix_, o.train.trainable);
    for (auto& m : members_) {
      fs::create_directories(m->dir);
      m->model = build(m->o);
      int64_t c = cut_point(m->model, m->o.train.trainable);
      require(c == cut_, m->ref.plan->name, "internal: members of a lockstep group differ in cut");
      const std::string ckpt = m->dir + "/checkpoint.pt";
      if (db_.epochs_done(m->ref.record.id) > 0 && fs::exists(ckpt)) m->start_epoch = -1;
    }
    bool any_fresh = std::any_of(members_.begin(), members_.end(),
                                 [](const auto& m) { return m->start_epoch == 0; });
    if (o.recalibrate_bn && any_fresh) recalibrate();

    // NHWC speeds up the inference-only prefix (oneDNN: 1.5-1.8x on MobileNetV2 here) but
    // slows the tails' backward (a 1x1 conv's weight gradient ran 2.3x slower in NHWC), so
    // only the prefix holder is converted; its outputs are made contiguous for the tails.
    if (o.channels_last) to_channels_last(*prefix_);
    for (auto& m : members_) make_trainer(*m);
    // The prefix state (BN statistics updated in train mode) of the earliest member.
    Member* earliest = nullptr;
    for (auto& m : members_) {
      if (earliest == nullptr || m->start_epoch < earliest->start_epoch) earliest = m.get();
    }
    if (cut_ > 0 && earliest != nullptr) copy_prefix(earliest->model, prefix_, cut_, false);

    train_source_ = make_source(data_.train, true);
    if (data_.val.size() > 0) val_source_ = make_source(data_.val, false);
    if (data_.test.size() > 0) test_source_ = make_source(data_.test, false);
    release_free_memory();  // the setup's peak (weights, recalibration, cache) is over
    if (cache_) {
      log::info("lockstep group of ", members_.size(), " run(s): frozen prefix (", cut_,
                " stages) read from the feature cache");
    } else {
      log::info("lockstep group of ", members_.size(), " run(s): frozen prefix of ", cut_,
                " stage(s) runs once per batch");
    }
  }

  void recalibrate() {
    // BN-folded imports carry placeholder statistics; measure the real ones on unaugmented
    // training batches before any BN layer runs in train mode. Only the loaded backbone is
    // recalibrated: a new head has nothing to fix.
    const RunOptions& o = lead();
    data::Batcher calib(data_.train, batcher_options(o.data, channels_, device_, false), o.seed);
    calib.start_epoch(0);
    data::Batch b;
    int64_t batches = 0;
    // The same images as whole evaluation batches, fed in chunks: statistics are merged
    // exactly (Chan et al.), and a 256-image batch at 224x224 would need ~10 GB at once.
    std::vector<torch::Tensor> chunks;
    auto report = models::recalibrate_batchnorm(*prefix_, [&](torch::Tensor& x) {
      if (chunks.empty()) {
        if (batches++ >= o.recalibrate_batches || !calib.next(b)) return false;
        auto parts = b.x.split(kPrefixChunk * 4);
        chunks.assign(parts.rbegin(), parts.rend());
      }
      x = chunks.back();
      chunks.pop_back();
      return true;
    });
    const int64_t trunk = prefix_->num_stages();  // every stage: the head is not copied
    for (auto& m : members_) {
      if (m->start_epoch == 0) copy_prefix(prefix_, m->model, trunk, false);
    }
    log::info("recalibrated ", report.layers, " BatchNorm layers on ", report.samples,
              " images (the backbone's statistics are used by every run of the group)");
  }

  void make_trainer(Member& m) {
    train::TrainOptions to = m.o.train;
    to.label = m.ref.plan->name;
    to.progress = false;  // the group prints one progress line
    to.input_stage = cut_;
    m.trainer = std::make_unique<train::Trainer>(m.model, to, device_);
    if (m.o.probe.grad_norms) {
      m.grad_probe = std::make_unique<probe::GradNormProbe>();
      m.trainer->add_observer(m.grad_probe.get());
    }
    const int64_t steps = (data_.train.size() + m.o.data.batch_size - 1) / m.o.data.batch_size;
    m.schedule = std::make_unique<train::LrSchedule>(m.o.schedule, m.trainer->optimizer(), steps,
                                                     m.o.train.epochs);
    m.stopper = std::make_unique<train::EarlyStopping>(m.o.early_stopping);
    if (m.start_epoch < 0) {
      nlohmann::json extra;
      m.start_epoch = m.trainer->load_checkpoint(m.dir + "/checkpoint.pt", &extra);
      if (extra.contains("schedule")) m.schedule->load_state(extra["schedule"]);
      if (extra.contains("early_stopping")) m.stopper->load_state(extra["early_stopping"]);
      if (fs::exists(m.dir + "/best.pt")) m.best_state = read_file_text(m.dir + "/best.pt");
      log::info("resuming ", m.ref.plan->name, " after epoch ", m.start_epoch);
    }
    m.epochs_done = m.start_epoch;
    db_.truncate_from_epoch(m.ref.record.id, m.start_epoch);
  }

  bool cache_usable(std::string& why) {
    const RunOptions& o = lead();
    if (cut_ == 0) {
      why = "no frozen prefix (train.trainable is empty or starts at the first stage)";
    } else if (!data::flip_only(o.data.augment)) {
      why = "augmentation other than horizontal flips changes the prefix input every epoch";
    } else if (o.train.frozen_bn == train::FrozenBatchNorm::kUpdate &&
               prefix_has_batch_norm(prefix_, cut_)) {
      why = "train.frozen_bn = \"update\": the prefix's BatchNorm layers use batch statistics";
    } else {
      return true;
    }
    return false;
  }

  std::unique_ptr<Source> make_source(const data::Dataset& ds, bool training) {
    const RunOptions& o = lead();
    std::string why;
    if (training) {
      const std::string& mode = o.data.feature_cache;
      cache_ = mode != "off" && cache_usable(why);
      require(mode != "require" || cache_, "data.feature_cache = \"require\"",
              "the feature cache cannot be used: " + why,
              "use \"auto\" to fall back to running the prefix every batch");
    }
    if (cache_) {
      FeatureCacheRequest r;
      r.model = prefix_;
      r.cut = cut_;
      Json arch = members_.front()->ref.plan->config.at("model");
      arch.erase("head");
      arch.erase("weights");  // the prefix fingerprint covers the weights' bytes
      r.architecture = arch.dump();
      r.preprocess = batcher_options(o.data, channels_, device_, false);
      r.views = (training ? o.data.augment.hflip : o.tta) ? 2 : 1;
      r.channels_last = o.channels_last;
      auto res = cached_prefix_features(r, ds);
      timing_.cache_seconds += res.seconds;
      timing_.cache_images += res.image_views;
      return std::make_unique<CacheSource>(
          res.file, ds.labels, training ? o.data.batch_size : o.data.eval_batch_size, training,
          training && o.data.augment.hflip, o.seed, device_);
    }
    data::Batcher b(ds, batcher_options(o.data, channels_, device_, training), o.seed);
    return std::make_unique<TrunkSource>(std::move(b), prefix_, cut_, o.channels_last);
  }

  void set_prefix_mode() {
    // The prefix is frozen: in "update" mode its BN layers still use batch statistics and
    // update their running estimates, as PyTorch does after model.train().
    const bool update = lead().train.frozen_bn == train::FrozenBatchNorm::kUpdate;
    prefix_->train(update);
  }

  void train_epoch(const std::vector<Member*>& active, int64_t epoch) {
    auto t0 = Clock::now();
    set_prefix_mode();
    train_source_->start_epoch(epoch);
    const int64_t steps = train_source_->batches_per_epoch();
    for (Member* m : active) m->trainer->begin_epoch(epoch, steps);
    ProgressOptions po;
    po.label = active.size() == 1 ? active.front()->ref.plan->name
                                  : std::to_string(active.size()) + " runs (" +
                                        active.front()->ref.plan->group + " ...)";
    po.epochs = members_.front()->o.train.epochs;
    po.steps_per_epoch = steps;
    po.enabled = options_.progress;
    Progress progress(po);
    train::AutocastGuard autocast(device_, lead().precision);
    torch::Tensor h;
    train::Targets t;
    int64_t step = 0;
    while (train_source_->next(h, nullptr, t)) {
      for (Member* m : active) {
        if (m->done) continue;
        try {
          m->schedule->before_step(m->trainer->global_step());
          m->trainer->train_step(h, t);
        } catch (const std::exception& e) {
          fail(*m, e.what());
        }
      }
      timing_.train_samples += t.y.size(0) * static_cast<int64_t>(active.size());
      progress.step(epoch, ++step, t.y.size(0));
    }
    for (Member* m : active) {
      if (m->done) continue;
      try {
        m->stats = m->trainer->end_epoch();
      } catch (const std::exception& e) {
        fail(*m, e.what());
      }
    }
    timing_.train_seconds += seconds_since(t0);
  }

  // Evaluates every member in `who` on `source`: the prefix runs once per batch.
  std::vector<train::EvalResult> evaluate(const std::vector<Member*>& who, Source& source,
                                          const std::string& split, int64_t epoch) {
    auto t0 = Clock::now();
    std::vector<std::unique_ptr<train::EvalModeGuard>> guards;
    guards.push_back(std::make_unique<train::EvalModeGuard>(*prefix_));
    std::vector<train::EvalAccumulator> acc;
    for (Member* m : who) {
      guards.push_back(std::make_unique<train::EvalModeGuard>(*m->model));
      acc.emplace_back(m->model->options().num_classes, device_);
    }
    torch::NoGradGuard no_grad;
    train::AutocastGuard autocast(device_, lead().precision);
    const bool tta = lead().tta;
    source.start_epoch(0);
    torch::Tensor h, h_flip;
    train::Targets t;
    while (source.next(h, tta ? &h_flip : nullptr, t)) {
      for (size_t i = 0; i < who.size(); ++i) {
        torch::Tensor logits = who[i]->trainer->logits(h).to(torch::kFloat);
        // Test-time augmentation: the mean of the original and mirrored images' logits.
        if (tta) logits = 0.5 * (logits + who[i]->trainer->logits(h_flip).to(torch::kFloat));
        acc[i].add(logits, t.y);
      }
      timing_.eval_samples += t.y.size(0) * static_cast<int64_t>(who.size());
    }
    std::vector<train::EvalResult> out;
    for (size_t i = 0; i < who.size(); ++i) {
      out.push_back(acc[i].result(split));
      who[i]->trainer->notify_evaluation(out.back(), epoch);
    }
    timing_.eval_seconds += seconds_since(t0);
    return out;
  }

  void end_epoch(const std::vector<Member*>& all_active, int64_t epoch) {
    std::vector<Member*> active;
    for (Member* m : all_active) {
      if (!m->done) active.push_back(m);
    }
    if (active.empty()) return;
    // Every run's copy of the prefix takes the shared prefix's state (BN statistics).
    if (cut_ > 0) {
      for (Member* m : active) copy_prefix(prefix_, m->model, cut_, true);
    }
    const bool has_val = val_source_ != nullptr;
    std::vector<train::EvalResult> vals;
    if (has_val) {
      vals = evaluate(active, *val_source_, "val", epoch);
    } else {
      auto source = make_source(data_.train, false);
      vals = evaluate(active, *source, "train_eval", epoch);
    }
    std::vector<Member*> finishing;
    for (size_t i = 0; i < active.size(); ++i) {
      Member& m = *active[i];
      m.val = vals[i];
      auto& rec = m.trainer->recorder();
      rec.epoch_value("train/loss", epoch, m.stats.loss);
      rec.epoch_value("train/acc", epoch, m.stats.accuracy);
      rec.epoch_value("time/epoch_s", epoch, m.stats.seconds);
      rec.epoch_value("train/images_per_s", epoch, m.stats.images_per_s);
      rec.epoch_value("lr/factor", epoch, m.schedule->factor());
      record_eval(rec, m.val, epoch);
      bool stop = false;
      if (m.stopper->enabled()) {
        auto d = m.stopper->update(epoch, monitored(m.o.early_stopping.monitor, m.stats, m.val));
        if (d.improved) {
          m.best_state = model_state_bytes(*m.model);
          write_file_atomic(m.dir + "/best.pt", m.best_state);
        }
        stop = d.stop;
      }
      m.schedule->end_epoch(epoch, monitored(m.o.schedule.monitor, m.stats, m.val));
      m.epochs_done = epoch + 1;
      const bool last = stop || m.epochs_done == m.o.train.epochs;
      if (last) {
        if (stop) {
          log::info(m.ref.plan->name, ": early stopping after epoch ", epoch + 1, " (best ",
                    m.o.early_stopping.monitor, " at epoch ", m.stopper->best_epoch() + 1, ")");
          rec.epoch_value("early_stopping/stopped_epoch", epoch, static_cast<double>(epoch));
        }
        if (m.o.early_stopping.restore_best && m.stopper->enabled() && !m.best_state.empty()) {
          load_model_state(*m.model, m.best_state, m.dir + "/best.pt");
          rec.epoch_value("early_stopping/best_epoch", epoch,
                          static_cast<double>(m.stopper->best_epoch()));
        }
        finishing.push_back(&m);
      }
      if (options_.progress) {
        char summary[160];
        std::snprintf(summary, sizeof summary, "train_loss %.4f  %s_acc %.2f", m.stats.loss,
                      m.val.split.c_str(), m.val.accuracy);
        log::info(m.ref.plan->name, " epoch ", epoch + 1, "/", m.o.train.epochs, ": ", summary);
      }
    }
    if (!finishing.empty()) finish(finishing, epoch);
    for (Member* m : active) {
      if (m->done) continue;
      auto flushed = m->trainer->recorder().flush();
      db_.write_epoch(m->ref.record.id, epoch, to_points(flushed.step), to_points(flushed.epoch));
      nlohmann::json extra = {{"schedule", m->schedule->state()},
                              {"early_stopping", m->stopper->state()}};
      m->trainer->save_checkpoint(m->dir + "/checkpoint.pt", epoch + 1, extra);
      if (std::find(finishing.begin(), finishing.end(), m) != finishing.end()) complete(*m);
    }
  }

  // A run whose last checkpoint is already final (killed between the checkpoint and its
  // status update, or stopped early) gets its final evaluation now.
  void finish_resumed() {
    std::vector<Member*> ended;
    for (auto& m : members_) {
      if (m->start_epoch > 0 &&
          (m->start_epoch >= m->o.train.epochs || m->stopper->stopped_epoch() >= 0)) {
        ended.push_back(m.get());
      }
    }
    if (ended.empty()) return;
    const int64_t epoch = ended.front()->start_epoch - 1;
    std::vector<train::EvalResult> vals;
    if (val_source_) {
      vals = evaluate(ended, *val_source_, "val", epoch);
    } else {
      auto source = make_source(data_.train, false);
      vals = evaluate(ended, *source, "train_eval", epoch);
    }
    for (size_t i = 0; i < ended.size(); ++i) ended[i]->val = vals[i];
    finish(ended, epoch);
    for (Member* m : ended) {
      if (m->done) continue;
      // Its metrics (test included) were written with that epoch, before the checkpoint.
      m->trainer->recorder().flush();
      complete(*m);
    }
  }

  // Final evaluation for runs that end this epoch: test metrics, confusion, landscape.
  void finish(const std::vector<Member*>& who, int64_t epoch) {
    const auto& labels = data_.train.class_names;
    std::vector<train::EvalResult> tests;
    if (test_source_) tests = evaluate(who, *test_source_, "test", epoch);
    for (size_t i = 0; i < who.size(); ++i) {
      Member& m = *who[i];
      try {
        db_.put_artifact(m.ref.record.id, "confusion", confusion_json(m.val, labels));
        if (!tests.empty()) {
          record_eval(m.trainer->recorder(), tests[i], epoch);
          db_.put_artifact(m.ref.record.id, "confusion_test", confusion_json(tests[i], labels));
        }
        if (m.o.probe.landscape) landscape(m);
      } catch (const std::exception& e) {
        fail(m, e.what());
      }
    }
  }

  void landscape(Member& m) {
    std::vector<torch::Tensor> params;
    int64_t lowest = m.model->num_stages();
    for (const auto& item : m.model->named_parameters()) {
      bool pick = m.o.probe.landscape_params == "trainable"
                      ? item.value().requires_grad()
                      : train::pattern_matches(m.o.probe.landscape_params, item.key());
      if (pick) {
        params.push_back(item.value());
        lowest = std::min(lowest, m.model->stage_of(item.key()));
      }
    }
    require(!params.empty(), m.ref.plan->name + ": key 'probe.landscape.params'",
            "selects no parameter");
    // Fixed unaugmented batches; with only tail parameters moving, the prefix runs once.
    const data::Dataset& ds = data_.val.size() > 0 ? data_.val : data_.train;
    data::Batcher b(ds, batcher_options(m.o.data, channels_, device_, false), m.o.seed);
    b.start_epoch(0);
    const int64_t stage = std::min(lowest, cut_);
    std::vector<data::Batch> batches;
    data::Batch batch;
    train::EvalModeGuard eval_mode(*prefix_);
    while (static_cast<int64_t>(batches.size()) < m.o.probe.landscape_options.max_batches &&
           b.next(batch)) {
      torch::NoGradGuard no_grad;
      torch::Tensor x =
          m.o.channels_last ? batch.x.contiguous(torch::MemoryFormat::ChannelsLast) : batch.x;
      batch.x = stage > 0 ? run_prefix(prefix_, x, stage).contiguous() : batch.x;
      batches.push_back(batch);
    }
    auto land = probe::loss_landscape(m.model, params, batches, stage, m.o.probe.landscape_options);
    db_.put_artifact(m.ref.record.id, "landscape", land.to_json());
  }

  void complete(Member& m) {
    save_final_weights(*m.model, m.dir + "/model.safetensors");
    db_.set_status(m.ref.record.id, store::RunStatus::kComplete, "", seconds_since(m.started));
    ++result_.completed;
    m.done = true;
  }

  store::Store& db_;
  const RunnerOptions& options_;
  StudyResult& result_;
  EngineTiming& timing_;
  std::vector<std::unique_ptr<Member>> members_;
  torch::Device device_ = torch::kCPU;
  RunData data_;
  int64_t channels_ = 0;
  models::Classifier prefix_{nullptr};
  int64_t cut_ = 0;
  bool cache_ = false;
  std::unique_ptr<Source> train_source_, val_source_, test_source_;
};

}  // namespace

void run_group(const std::vector<GroupMember>& members, store::Store& db,
               const RunnerOptions& options, StudyResult& result, EngineTiming& timing) {
  if (members.empty()) return;
  for (const auto& m : members) db.set_status(m.record.id, store::RunStatus::kRunning);
  try {
    Group group(members, db, options, result, timing);
    group.run();
  } catch (const std::exception& e) {
    // A setup error (data, weights, cache) fails every run of the group that has not ended.
    for (const auto& m : members) {
      auto runs = db.runs();
      for (const auto& r : runs) {
        if (r.id == m.record.id && r.status == store::RunStatus::kRunning) {
          db.set_status(m.record.id, store::RunStatus::kFailed, e.what());
          ++result.failed;
          result.failures.push_back(m.plan->name + ": " + e.what());
          log::error(m.plan->name, " failed: ", e.what());
        }
      }
    }
  }
}

}  // namespace normlab::study
