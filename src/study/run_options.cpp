#include "study/run_options.h"

#include "core/error.h"
#include "core/runtime.h"
#include "models/head.h"
#include "nn/norm.h"
#include "store/metric_names.h"

namespace normlab::study {
namespace {

std::string key_msg(const std::string& where, const std::string& key) {
  return where + ": key '" + key + "'";
}

template <typename T>
T get(const Json& cfg, const std::string& key) {
  const Json& v = config_at(cfg, key);
  try {
    return v.get<T>();
  } catch (const Json::exception&) {
    // Empty-list defaults carry no element type, so element types are checked here.
    throw Error("config key '" + key + "'", "has the wrong type for its elements: " + v.dump());
  }
}

int64_t positive(const Json& cfg, const std::string& key, const std::string& where,
                 bool allow_zero = false) {
  auto v = get<int64_t>(cfg, key);
  require(allow_zero ? v >= 0 : v > 0, key_msg(where, key),
          std::string("must be ") + (allow_zero ? ">= 0" : "> 0") + ", got " + std::to_string(v));
  return v;
}

double in_range(const Json& cfg, const std::string& key, const std::string& where, double lo,
                double hi, const std::string& what) {
  auto v = get<double>(cfg, key);
  require(v >= lo && v <= hi, key_msg(where, key),
          "must be " + what + ", got " + std::to_string(v));
  return v;
}

std::string one_of(const Json& cfg, const std::string& key, const std::string& where,
                   const std::vector<std::string>& names) {
  auto v = get<std::string>(cfg, key);
  std::string list;
  for (const auto& n : names) {
    if (n == v) return v;
    list += (list.empty() ? "" : ", ") + n;
  }
  throw Error(key_msg(where, key), "unknown value '" + v + "'", "use one of: " + list);
}

void check_norm(const std::string& norm, const std::string& where, const std::string& key) {
  try {
    nn::parse_norm(norm);
  } catch (const Error& e) {
    throw Error(key_msg(where, key), e.problem() + " '" + norm + "'", e.hint());
  }
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

RunOptions run_options(const Json& c, const std::string& where) {
  RunOptions o;
  o.seed = static_cast<uint64_t>(positive(c, "seed", where, true));
  o.device = get<std::string>(c, "device");

  // data
  DataSlice& d = o.data;
  std::string dataset = one_of(c, "data.dataset", where, data::dataset_names());
  d.split.train_source.name = dataset;
  d.split.train_source.path = get<std::string>(c, "data.path");
  d.split.train_source.train = true;
  d.split.train_source.synthetic_size = positive(c, "data.synthetic.size", where);
  d.split.train_source.synthetic_classes = positive(c, "data.synthetic.classes", where);
  d.split.train_source.synthetic_channels = positive(c, "data.synthetic.channels", where);
  d.split.train_source.synthetic_hw = positive(c, "data.synthetic.hw", where);
  d.split.test_source = d.split.train_source;
  d.split.test_source.train = false;
  d.split.classes = get<std::vector<int64_t>>(c, "data.classes");
  for (auto k : d.split.classes) {
    require(k >= 0, key_msg(where, "data.classes"),
            "class ids must be >= 0, got " + std::to_string(k));
  }
  d.split.val_fraction = in_range(c, "data.val_fraction", where, 0.0, 1.0, "in [0, 1]");
  d.split.split_seed = static_cast<uint64_t>(positive(c, "data.split_seed", where, true));
  d.split.train_limit = positive(c, "data.train_limit", where, true);
  d.split.val_limit = positive(c, "data.val_limit", where, true);
  d.split.test = get<bool>(c, "data.test");
  d.split.test_limit = positive(c, "data.test_limit", where, true);
  d.normalize = get<std::string>(c, "data.normalize");
  if (d.normalize == "auto") {
    if (dataset == "fashion-mnist" || dataset == "mnist")
      d.normalize = dataset;
    else if (dataset == "cifar10" || dataset == "cifar100")
      d.normalize = "cifar";
    else
      d.normalize = "minus-one-one";
  }
  try {
    data::normalize_preset(d.normalize);
  } catch (const Error& e) {
    throw Error(key_msg(where, "data.normalize"), e.problem(), e.hint());
  }
  d.resize = positive(c, "data.resize", where, true);
  d.augment =
      read_options<data::AugmentOptions>(config_at(c, "data.augment"), "data.augment", where);
  d.split.val_from = one_of(c, "data.val_from", where, {"train", "test", "same"});
  d.split.train_from = one_of(c, "data.train_from", where, {"train", "test"});
  if (d.split.train_from == "test") {
    require(d.split.val_from == "same", key_msg(where, "data.val_from"),
            "must be \"same\" when data.train_from = \"test\" (the full-batch regime: the "
            "official test set is both training and evaluation set), got '" +
                d.split.val_from + "'");
  }
  d.full_batch = get<bool>(c, "train.full_batch");
  d.feature_cache = one_of(c, "data.feature_cache", where, {"auto", "off", "require"});
  d.batch_size = positive(c, "train.batch_size", where);
  d.eval_batch_size = positive(c, "train.eval_batch_size", where);

  // model
  models::ModelOptions& m = o.model;
  m.backbone = one_of(c, "model.backbone", where, models::backbone_names());
  m.norm = get<std::string>(c, "model.norm");
  check_norm(m.norm, where, "model.norm");
  m.width = positive(c, "model.width", where);
  m.depth = positive(c, "model.depth", where);
  m.norm_options.momentum = in_range(c, "model.bn_momentum", where, 0.0, 1.0, "in [0, 1]");
  m.norm_options.eps = in_range(c, "model.bn_eps", where, 0.0, 1.0, "in [0, 1]");
  m.width_mult = in_range(c, "model.width_mult", where, 0.01, 10.0, "in [0.01, 10]");
  m.dropout = in_range(c, "model.dropout", where, 0.0, 0.99, "in [0, 0.99]");
  m.tf_same_padding = get<bool>(c, "model.tf_same_padding");
  for (const auto& item : config_at(c, "model.norm_overrides").items()) {
    std::string norm = item.value().get<std::string>();
    check_norm(norm, where, "model.norm_overrides." + item.key());
    m.norm_overrides.emplace_back(item.key(), norm);
  }
  m.bn_bfn = one_of(c, "model.bn_bfn", where, {"off", "alternate", "xbn-p1", "xbn-p2", "xbn-p3"});
  m.bfn_norm = get<std::string>(c, "model.bfn_norm");
  if (m.bfn_norm != "auto") {
    check_norm(m.bfn_norm, where, "model.bfn_norm");
    require(nn::parse_norm(m.bfn_norm).kind != "bn" && nn::parse_norm(m.bfn_norm).kind != "dmbn",
            key_msg(where, "model.bfn_norm"),
            "must be a batch-free norm (ln, gn:G, in, frn, none), got '" + m.bfn_norm + "'");
  }
  o.dmbn = read_options<nn::DmbnOptions>(config_at(c, "model.dmbn"), "model.dmbn", where);
  m.norm_options.dmbn_candidates = o.dmbn.candidates;
  m.head.kind = one_of(c, "model.head.kind", where, models::head_kinds());
  m.head.hidden = positive(c, "model.head.hidden", where);
  m.head.norm = get<std::string>(c, "model.head.norm");
  check_norm(m.head.norm, where, "model.head.norm");
  m.head.dropout = in_range(c, "model.head.dropout", where, 0.0, 0.99, "in [0, 0.99]");
  o.weights = get<std::string>(c, "model.weights");
  o.weights_skip = get<std::vector<std::string>>(c, "model.weights_skip");
  o.recalibrate_bn = get<bool>(c, "model.recalibrate_bn");
  o.recalibrate_batches = positive(c, "model.recalibrate_batches", where);
  o.channels_last = get<bool>(c, "model.channels_last");

  // train
  train::TrainOptions& t = o.train;
  t.epochs = positive(c, "train.epochs", where);
  t.optimizer = read_options<train::OptimizerOptions>(config_at(c, "train.optimizer"),
                                                      "train.optimizer", where);
  t.trainable = get<std::vector<std::string>>(c, "train.trainable");
  for (const auto& g : config_at(c, "train.param_groups")) {
    require(g.is_object(), key_msg(where, "train.param_groups"),
            "each entry must be a table {pattern = \"...\", lr = ...}, got " + g.dump());
    for (const auto& item : g.items()) {
      require(item.key() == "pattern" || item.key() == "lr",
              key_msg(where, "train.param_groups." + item.key()), "unknown key",
              "each entry has exactly: pattern, lr");
    }
    require(g.contains("pattern") && g["pattern"].is_string() && g.contains("lr") &&
                g["lr"].is_number() && g["lr"].get<double>() > 0,
            key_msg(where, "train.param_groups"),
            "each entry needs pattern (string) and lr (> 0), got " + g.dump());
    t.param_groups.push_back({g["pattern"].get<std::string>(), g["lr"].get<double>()});
  }
  t.frozen_bn = one_of(c, "train.frozen_bn", where, {"update", "freeze"}) == "update"
                    ? train::FrozenBatchNorm::kUpdate
                    : train::FrozenBatchNorm::kFreeze;
  t.clip.max_norm = in_range(c, "train.clip_norm", where, 0.0, 1e12, ">= 0 (0 = off)");
  t.clip.max_value = in_range(c, "train.clip_value", where, 0.0, 1e12, ">= 0 (0 = off)");
  t.label_smoothing = in_range(c, "train.label_smoothing", where, 0.0, 0.99, "in [0, 1)");
  t.seed = o.seed;
  o.tta = get<bool>(c, "train.tta");
  o.tta_monitor = get<bool>(c, "train.tta_monitor");
  o.precision = one_of(c, "train.precision", where, {"fp32", "bf16"});
  if (o.precision != "fp32") {
    require(parse_device(o.device).is_cuda(), key_msg(where, "train.precision"),
            "'" + o.precision + "' needs a CUDA device (autocast); device is '" + o.device + "'",
            "use precision \"fp32\" on the CPU");
  }
  o.schedule =
      read_options<train::ScheduleOptions>(config_at(c, "train.schedule"), "train.schedule", where);
  o.early_stopping = read_options<train::EarlyStoppingOptions>(config_at(c, "train.early_stopping"),
                                                               "train.early_stopping", where);

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
  return o;
}

}  // namespace normlab::study
