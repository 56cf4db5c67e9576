#include "study/run_options.h"

#include <limits>

#include "core/error.h"
#include "core/runtime.h"
#include "nn/norm.h"
#include "store/metric_names.h"

namespace normlab::study {
namespace {

std::string key_msg(const std::string& where, const std::string& key) {
  return where + ": key '" + key + "'";
}

// Whether the data settings give a run the evaluation split `split`.
bool has_split(const DataSlice& d, const std::string& split) {
  if (split == "train_eval") return true;
  if (split == "test") return d.split.test;
  if (d.split.val_from == "same") return true;
  return d.split.val_fraction > 0;
}

void require_split(const DataSlice& d, const std::string& split, const std::string& where,
                   const std::string& key) {
  require(has_split(d, split), key_msg(where, key), "the run has no '" + split + "' split",
          split == "test" ? "set data.test = true or choose another split"
                          : "give data.val_fraction > 0, or data.val_from = \"same\", or choose "
                            "another split");
}

bool uses_norm(const models::ModelOptions& m, const std::string& kind) {
  auto is = [&](const std::string& spec) { return nn::parse_norm(spec).kind == kind; };
  if (is(m.norm) || (m.head.kind != "linear" && is(m.head.norm))) return true;
  for (const auto& [pattern, spec] : m.norm_overrides) {
    if (is(spec)) return true;
  }
  return false;
}

}  // namespace

void describe(DataSlice& d, OptionFields& f) {
  describe(d.split, f);
  f.field("normalize", d.normalize);
  f.field("resize", d.resize, Range{0, std::numeric_limits<double>::infinity(), ">= 0"});
  f.field("resize_filter", d.resize_filter, {"pil", "float"});
  f.table("augment", d.augment);
  f.field("feature_cache", d.feature_cache, {"auto", "off", "require"});
}

void describe(RunOptions& o, OptionFields& f) {
  const Range positive{1, std::numeric_limits<double>::infinity(), "> 0"};
  f.field("seed", o.seed);
  f.field("device", o.device);
  f.table("data", o.data);
  f.table("model", [&](OptionFields& m) {
    describe(o.model, m);
    m.table("dmbn", o.dmbn);
    m.field("weights", o.weights);
    m.field("weights_skip", o.weights_skip, Empty::kAllowed);
    m.field("recalibrate_bn", o.recalibrate_bn);
    m.field("recalibrate_batches", o.recalibrate_batches, positive);
    m.field("channels_last", o.channels_last);
  });
  f.table("train", [&](OptionFields& t) {
    describe(o.train, t);
    t.field("batch_size", o.data.batch_size, positive);
    t.field("full_batch", o.data.full_batch);
    t.field("eval_batch_size", o.data.eval_batch_size, positive);
    t.field("val_every", o.val_every, Range{0, std::numeric_limits<double>::infinity(), ">= 0"});
    t.field("val_sample", o.val_sample, positive);
    t.field("tta", o.tta);
    t.field("tta_monitor", o.tta_monitor);
    t.field("precision", o.precision, {"fp32", "bf16"});
    t.table("schedule", o.schedule);
    t.table("early_stopping", o.early_stopping);
  });
}

RunOptions run_options(const Json& c, const std::string& where) {
  RunOptions o = read_options<RunOptions>(c, "", where);

  // data
  DataSlice& d = o.data;
  if (d.normalize == "auto") {
    const std::string& dataset = d.split.train_source.name;
    if (dataset == "fashion-mnist" || dataset == "mnist")
      d.normalize = dataset;
    else if (dataset == "cifar10" || dataset == "cifar100")
      d.normalize = "cifar";
    else if (dataset == "folder")
      d.normalize = "imagenet";  // photos, usually for an ImageNet-pretrained backbone
    else
      d.normalize = "minus-one-one";
  }
  try {
    data::normalize_preset(d.normalize);
  } catch (const Error& e) {
    throw Error(key_msg(where, "data.normalize"), e.problem(), e.hint());
  }
  if (d.split.train_from == "test") {
    require(d.split.val_from == "same", key_msg(where, "data.val_from"),
            "must be \"same\" when data.train_from = \"test\" (the full-batch regime: the "
            "official test set is both training and evaluation set), got '" +
                d.split.val_from + "'");
  }

  // model
  models::ModelOptions& m = o.model;
  if (m.bfn_norm != "auto") {
    require(nn::parse_norm(m.bfn_norm).kind != "bn" && nn::parse_norm(m.bfn_norm).kind != "dmbn",
            key_msg(where, "model.bfn_norm"),
            "must be a batch-free norm (ln, gn:G, in, frn, none), got '" + m.bfn_norm + "'");
  }
  m.norm_options.dmbn_candidates = o.dmbn.candidates;

  // train
  o.train.seed = o.seed;
  if (o.precision != "fp32") {
    require(parse_device(o.device).is_cuda(), key_msg(where, "train.precision"),
            "'" + o.precision + "' needs a CUDA device (autocast); device is '" + o.device + "'",
            "use precision \"fp32\" on the CPU");
  }

  // probes
  for (const auto& info : probe::probes()) {
    const Json& options = config_at(c, "probe." + info.name);
    info.check(options, where);
    if (options.at("enabled").get<bool>()) o.probe.enabled.emplace_back(&info, options);
  }
  if (const Json& esm = config_at(c, "probe.esm"); esm.at("enabled").get<bool>()) {
    require_split(d, esm.at("split").get<std::string>(), where, "probe.esm.split");
  }
  if (uses_norm(m, "dmbn")) require_split(d, o.dmbn.split, where, "model.dmbn.split");
  o.phases = parse_phases(
      c, o.train, [&](const Json& phase_config) { return run_options(phase_config, where).train; },
      where);
  return o;
}

}  // namespace normlab::study
