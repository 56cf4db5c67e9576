#include "study/feature_source.h"

#include <chrono>

#include "core/error.h"
#include "core/runtime.h"
#include "data/augment.h"
#include "models/fold_batchnorm.h"
#include "models/prefix.h"
#include "study/engine_timing.h"
#include "study/feature_cache.h"
#include "train/guards.h"

namespace normlab::study {
namespace {

// Images through the shared prefix (cut 0: the images themselves).
class TrunkSource : public FeatureSource {
 public:
  TrunkSource(data::Batcher batcher, models::Classifier prefix, int64_t cut, bool channels_last,
              EngineTiming* timing)
      : batcher_(std::move(batcher)),
        prefix_(std::move(prefix)),
        cut_(cut),
        channels_last_(channels_last),
        timing_(timing) {}
  int64_t batches_per_epoch() const override { return batcher_.batches_per_epoch(); }
  void start_epoch(int64_t epoch) override { batcher_.start_epoch(epoch); }
  void set_prefix(models::Classifier prefix) override { prefix_ = std::move(prefix); }
  bool next(torch::Tensor& h, torch::Tensor* h_flip, train::Targets& t) override {
    const auto t0 = std::chrono::steady_clock::now();
    data::Batch b;
    if (!batcher_.next(b)) return false;
    const auto t1 = std::chrono::steady_clock::now();
    torch::Tensor x = channels_last_ ? models::channels_last(b.x) : b.x;
    {
      // The prefix is frozen: no graph. (NoGradGuard rather than InferenceMode: the tails
      // save these tensors for their backward pass, which inference tensors forbid.)
      torch::NoGradGuard no_grad;
      // Channels-last maps stay channels-last: the tails' BatchNorm then runs on ATen's
      // channels-last kernels (bench/README.md, "The tails").
      auto layout = [&](const torch::Tensor& y) {
        return channels_last_ ? models::channels_last(y) : y.contiguous();
      };
      h = layout(models::run_prefix(*prefix_, x, cut_));
      if (h_flip != nullptr) *h_flip = layout(models::run_prefix(*prefix_, x.flip(3), cut_));
    }
    t = train::Targets{b.y, b.y2, b.lam};
    if (timing_ != nullptr) {
      const auto t2 = std::chrono::steady_clock::now();
      timing_->batch_seconds += std::chrono::duration<double>(t1 - t0).count();
      timing_->prefix_seconds += std::chrono::duration<double>(t2 - t1).count();
    }
    return true;
  }

 private:
  data::Batcher batcher_;
  models::Classifier prefix_;
  int64_t cut_;
  bool channels_last_;
  EngineTiming* timing_;  // training sources only
};

// Prefix outputs read from the feature cache; training order and flips drawn per epoch from
// the run's seed like the batcher's.
class CacheSource : public FeatureSource {
 public:
  CacheSource(std::shared_ptr<io::FeatureFile> file, torch::Tensor labels, int64_t batch_size,
              bool training, bool random_flip, uint64_t seed, bool channels_last,
              torch::Device device, EngineTiming* timing)
      : timing_(timing),
        file_(std::move(file)),
        labels_(labels.to(device)),
        batch_size_(batch_size),
        training_(training),
        random_flip_(random_flip),
        seed_(seed),
        channels_last_(channels_last),
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
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t end = std::min(n, cursor_ + batch_size_);
    torch::Tensor idx = order_.slice(0, cursor_, end);
    // The layout the shared prefix would have produced: a channels-last tail runs its
    // BatchNorm on ATen's channels-last kernels (bench/README.md, "The tails").
    auto layout = [&](torch::Tensor x) { return channels_last_ ? models::channels_last(x) : x; };
    h = layout(file_->gather(idx, views_.slice(0, cursor_, end), device_));
    if (h_flip != nullptr) *h_flip = layout(file_->gather(idx, torch::ones_like(idx), device_));
    t = train::Targets{labels_.index_select(0, to_device(idx, device_)), {}, {}};
    cursor_ = end;
    if (timing_ != nullptr) {
      timing_->batch_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    return true;
  }

 private:
  EngineTiming* timing_;  // training sources only
  std::shared_ptr<io::FeatureFile> file_;
  torch::Tensor labels_;
  int64_t batch_size_;
  bool training_;
  bool random_flip_;
  uint64_t seed_;
  bool channels_last_;
  torch::Device device_;
  torch::Tensor order_, views_;
  int64_t cursor_ = 0;
};

}  // namespace

data::BatcherOptions batcher_options(const DataSlice& d, int64_t channels, torch::Device device,
                                     bool training, int64_t items) {
  data::BatcherOptions b;
  b.batch_size = training ? d.train_batch(items) : d.eval_batch_size;
  b.shuffle = training;
  b.drop_last = false;
  if (training) b.augment = d.augment;
  b.resize = d.resize;
  b.resize_filter =
      d.resize_filter == "pil" ? data::ResizeFilter::kPil : data::ResizeFilter::kFloat;
  auto preset = data::normalize_preset(d.normalize, channels);
  b.mean = preset.mean;
  b.stddev = preset.stddev;
  b.device = device;
  return b;
}

FeatureSources::FeatureSources(const RunOptions& lead, std::string architecture,
                               models::Classifier prefix, int64_t cut, torch::Device device,
                               const data::Splits& splits, EngineTiming& timing, bool progress)
    : lead_(lead),
      architecture_(std::move(architecture)),
      prefix_(std::move(prefix)),
      runner_(prefix_),
      cut_(cut),
      device_(device),
      splits_(splits),
      timing_(timing),
      channels_(splits.train.images.size(1)),
      progress_(progress) {
  if (!any_phase_updates_frozen_bn(lead_.phases) && cut_ > 0) {
    int64_t folded = 0;
    runner_ = models::folded_prefix(*prefix_, cut_, lead_.channels_last, &folded);
    if (folded == 0) runner_ = prefix_;
  }
  const std::string& mode = lead_.data.feature_cache;
  const std::string why = cache_refusal();
  cached_ = mode != "off" && why.empty();
  require(mode != "require" || cached_, "data.feature_cache = \"require\"",
          "the feature cache cannot be used: " + why,
          "use \"auto\" to fall back to running the prefix every batch");
  train_ = make(splits_.train, true, "train");
  if (splits_.val.size() > 0) val_ = make(splits_.val, false, "val");
  if (splits_.test.size() > 0) test_ = make(splits_.test, false, "test");
}

std::string feature_cache_refusal(const RunOptions& lead, models::ClassifierImpl& prefix,
                                  int64_t cut) {
  if (cut == 0) return "no frozen prefix (train.trainable is empty or starts at the first stage)";
  if (!data::flip_only(lead.data.augment)) {
    return "augmentation other than horizontal flips changes the prefix input every epoch";
  }
  if (any_phase_updates_frozen_bn(lead.phases) && models::prefix_has_batch_norm(prefix, cut)) {
    return "train.frozen_bn = \"update\": the prefix's BatchNorm layers use batch statistics";
  }
  return "";
}

std::string FeatureSources::cache_refusal() const {
  return feature_cache_refusal(lead_, *prefix_.ptr(), cut_);
}

std::unique_ptr<FeatureSource> FeatureSources::make(const data::Dataset& ds, bool training,
                                                    const std::string& split) {
  const RunOptions& o = lead_;
  if (cached_) {
    FeatureCacheRequest r;
    r.model = prefix_;
    r.runner = runner_;
    r.cut = cut_;
    r.architecture = architecture_;
    r.preprocess = batcher_options(o.data, channels_, device_, false, ds.size());
    r.views = (training ? o.data.augment.hflip : o.tta) ? 2 : 1;
    r.channels_last = o.channels_last;
    r.split = split;
    r.progress = progress_;
    auto res = cached_prefix_features(r, ds);
    timing_.cache_seconds += res.seconds;
    timing_.cache_images += res.image_views;
    return std::make_unique<CacheSource>(
        res.file, ds.labels, training ? o.data.train_batch(ds.size()) : o.data.eval_batch_size,
        training, training && o.data.augment.hflip, o.seed, o.channels_last, device_,
        training ? &timing_ : nullptr);
  }
  data::Batcher b(ds, batcher_options(o.data, channels_, device_, training, ds.size()), o.seed);
  return std::make_unique<TrunkSource>(std::move(b), runner_, cut_, o.channels_last,
                                       training ? &timing_ : nullptr);
}

FeatureSource* FeatureSources::eval(const std::string& split) {
  FeatureSource* source = nullptr;
  if (split == "val") {
    source = val_.get();
  } else if (split == "test") {
    source = test_.get();
  } else if (split == "train_eval") {
    if (!train_eval_) train_eval_ = make(splits_.train, false, "train_eval");
    source = train_eval_.get();
  } else {
    throw Error("split '" + split + "'", "unknown evaluation split", "use val, test or train_eval");
  }
  // A prefix that trains its BatchNorm statistics evaluates in eval mode with the statistics
  // it has now: fold them for this pass, as runner_ does for a frozen one
  // (models/fold_batchnorm.h; one copy per pass, against a pass over the split).
  if (source != nullptr && !cached_ && cut_ > 0 && any_phase_updates_frozen_bn(lead_.phases) &&
      models::prefix_has_batch_norm(*prefix_, cut_)) {
    int64_t folded = 0;
    models::Classifier pass = models::folded_prefix(*prefix_, cut_, lead_.channels_last, &folded);
    source->set_prefix(folded > 0 ? pass : prefix_);
  }
  return source;
}

const data::Dataset* FeatureSources::dataset(const std::string& split) const {
  if (split == "train" || split == "train_eval") return &splits_.train;
  if (split == "val") return &splits_.val;
  if (split == "test") return &splits_.test;
  return nullptr;
}

bool FeatureSources::has_split(const std::string& split) const {
  const data::Dataset* ds = dataset(split);
  return ds != nullptr && ds->images.defined() && ds->size() > 0;
}

void FeatureSources::for_each(const std::string& split, int64_t max_batches, int64_t stage,
                              const std::function<bool(const data::Batch&)>& fn) {
  require(has_split(split), "split '" + split + "'", "the run has no such split (or it is empty)");
  require(stage >= 0 && stage <= cut_, "evaluation batches",
          "stage " + std::to_string(stage) + " is past the frozen prefix (" + std::to_string(cut_) +
              ")");
  int64_t taken = 0;
  auto more = [&] { return max_batches <= 0 || taken < max_batches; };
  train::EvalModeGuard eval_mode(*prefix_);
  torch::NoGradGuard no_grad;
  if (stage == cut_) {
    // The group's own evaluation source: cached or shared prefix outputs.
    FeatureSource* source = eval(split == "train" ? "train_eval" : split);
    source->start_epoch(0);
    torch::Tensor h;
    train::Targets t;
    while (more() && source->next(h, nullptr, t)) {
      if (!fn(data::Batch{h, t.y, {}, {}})) return;
      ++taken;
    }
    return;
  }
  data::Batcher b(*dataset(split),
                  batcher_options(lead_.data, channels_, device_, false, dataset(split)->size()),
                  lead_.seed);
  b.start_epoch(0);
  data::Batch batch;
  while (more() && b.next(batch)) {
    torch::Tensor x = lead_.channels_last ? models::channels_last(batch.x) : batch.x;
    batch.x = stage > 0 ? models::run_prefix(*prefix_, x, stage).contiguous() : batch.x;
    if (!fn(batch)) return;
    ++taken;
  }
}

}  // namespace normlab::study
