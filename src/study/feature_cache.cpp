#include "study/feature_cache.h"

#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/progress.h"
#include "io/cache.h"
#include "models/prefix.h"
#include "train/guards.h"

namespace normlab::study {
namespace fs = std::filesystem;
namespace {

void hash_tensor(Sha256& h, const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
  h.update(c.data_ptr(), c.numel() * c.element_size());
}

std::string images_fingerprint(const data::Dataset& ds) {
  Sha256 h;
  hash_tensor(h, ds.images);
  return h.hex();
}

torch::Tensor prefix_forward(models::Classifier& model, const torch::Tensor& x, int64_t cut,
                             bool channels_last) {
  return models::run_prefix(*model, channels_last ? models::channels_last(x) : x, cut);
}

// Every image once, in dataset order, unaugmented: row i of the file is image i.
data::BatcherOptions in_order(data::BatcherOptions o) {
  o.shuffle = false;
  o.augment = {};
  return o;
}

// Recomputes two items and compares them with the stored fp16 values: catches a file whose
// key matches but whose contents came from a different computation (a bug, or an edit).
bool spot_check(const FeatureCacheRequest& r, const data::Dataset& ds, const io::FeatureFile& f) {
  const int64_t n = ds.size();
  torch::Tensor items = torch::tensor({int64_t{0}, n - 1});
  data::Dataset probe = data::subset(ds, items);
  data::Batcher b(probe, in_order(r.preprocess), 0);
  b.start_epoch(0);
  data::Batch batch;
  b.next(batch);
  models::Classifier model = r.runner ? r.runner : r.model;
  torch::Tensor fresh = prefix_forward(model, batch.x, r.cut, r.channels_last).to(torch::kCPU);
  torch::Tensor stored = f.gather(items, torch::zeros({2}, torch::kLong), torch::kCPU);
  // fp16 keeps ~3 significant digits.
  return torch::allclose(stored, fresh.to(torch::kHalf).to(torch::kFloat), 1e-2, 1e-2);
}

}  // namespace

std::string prefix_fingerprint(models::Classifier& model, int64_t cut) {
  Sha256 h;
  auto add = [&](const std::string& name, const torch::Tensor& t) {
    if (model->stage_of(name) >= cut) return;
    h.update(name.data(), name.size());
    for (int64_t s : t.sizes()) h.update(&s, sizeof s);
    hash_tensor(h, t);
  };
  for (const auto& p : model->named_parameters()) add(p.key(), p.value());
  for (const auto& b : model->named_buffers()) add(b.key(), b.value());
  return h.hex();
}

FeatureCacheResult cached_prefix_features(const FeatureCacheRequest& r, const data::Dataset& ds) {
  require(ds.size() > 0, "feature cache", "the dataset is empty");
  models::Classifier model = r.model;
  models::Classifier runner = r.runner ? r.runner : r.model;
  train::EvalModeGuard eval_mode(*model);
  torch::NoGradGuard no_grad;

  nlohmann::json key = {
      {"format", "normlab-prefix-features-1"},
      {"architecture", r.architecture},
      {"cut", r.cut},
      {"prefix_sha256", prefix_fingerprint(model, r.cut)},
      {"images_sha256", images_fingerprint(ds)},
      {"images_shape", ds.images.sizes().vec()},
      {"resize", r.preprocess.resize},
      {"resize_filter", r.preprocess.resize_filter == data::ResizeFilter::kPil ? "pil" : "float"},
      {"mean", r.preprocess.mean},
      {"stddev", r.preprocess.stddev},
      {"views", r.views}};
  const std::string key_text = key.dump();
  const std::string dir = io::cache_dir() + "/features";
  const std::string path = dir + "/" + io::feature_file_name(key_text);

  FeatureCacheResult out;
  if (fs::exists(path)) {
    try {
      auto file = std::make_shared<io::FeatureFile>(io::FeatureFile::open(path, key_text));
      if (spot_check(r, ds, *file)) {
        log::info("feature cache: reusing ", path);
        out.file = file;
        return out;
      }
      log::warn("feature cache: ", path, " does not match a fresh forward pass; rebuilding it");
    } catch (const Error& e) {
      log::warn("feature cache: ", e.what(), "; rebuilding it");
    }
    std::error_code ec;
    fs::remove(path, ec);
  }

  auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  fs::create_directories(dir, ec);
  require(!ec, dir, "cannot create the feature cache directory (" + ec.message() + ")",
          "set NORMLAB_CACHE to a writable directory, or data.feature_cache = \"off\"");
  data::Batcher batcher(ds, in_order(r.preprocess), 0);
  batcher.start_epoch(0);
  data::Batch batch;
  std::unique_ptr<io::FeatureFileWriter> writer;
  int64_t first = 0;
  log::info("feature cache: computing the frozen prefix for ", ds.size(), " images x ", r.views,
            " view(s) into ", path);
  ProgressOptions po;
  po.label = "feature cache (" + (r.split.empty() ? std::string("images") : r.split) + ", " +
             std::to_string(ds.size()) + " images x " + std::to_string(r.views) + " view(s))";
  po.epochs = 0;
  po.steps_per_epoch = batcher.batches_per_epoch();
  po.enabled = r.progress;
  Progress progress(po);
  int64_t step = 0;
  while (batcher.next(batch)) {
    torch::Tensor h = prefix_forward(runner, batch.x, r.cut, r.channels_last);
    if (!writer) {
      io::FeatureFileSpec spec;
      spec.key = key_text;
      spec.items = ds.size();
      spec.views = r.views;
      spec.feature_shape = h.sizes().slice(1).vec();
      writer = std::make_unique<io::FeatureFileWriter>(path, spec);
    }
    writer->write(0, first, h);
    if (r.views > 1)
      writer->write(1, first, prefix_forward(runner, batch.x.flip(3), r.cut, r.channels_last));
    first += batch.x.size(0);
    out.image_views += batch.x.size(0) * r.views;
    progress.step(0, ++step, batch.x.size(0) * r.views);
  }
  writer->commit();
  progress.finish("written");
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.built = true;
  out.file = std::make_shared<io::FeatureFile>(io::FeatureFile::open(path, key_text));
  return out;
}

}  // namespace normlab::study
