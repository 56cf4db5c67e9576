// Training-step parity with PyTorch (scripts/gen_step_fixtures.py): from the same weights on
// the same batches, normlab's trainer and PyTorch agree, to 1e-5 relative, on the loss, every
// trainable parameter's raw and clipped gradient, the pre-clip global norm, the optimizer's
// state and the updated weights after one step, and on the weights, optimizer state and every
// BatchNorm's running statistics after ten, for S0's tail (mlp head with bn/ln/frn, clip 0 and
// 0.1, Adam in two learning-rate groups), S3's (norm_mlp head, AdamW, label smoothing) and
// S4's MLP (SGD with momentum; BN momentum 0.1 and 0.8), in both frozen-BN modes.
//
// Each case runs twice: through the trainer with the whole model ("model"), and as the study
// engine runs a lockstep group ("engine"): the frozen prefix in a model of its own, in train
// mode for frozen_bn = "update" and eval mode for "freeze", under no_grad, its output fed to
// the trainer at the cut (study/feature_source.cpp). The engine runs that prefix channels-last
// and, in eval mode, in chunks of 8 images (models::run_prefix); EnginePrefix checks what that
// changes in the features, and the steps run the prefix in NCHW at once: Adam's first steps
// move every weight by about lr whatever the gradient's size, so a last-bit difference in the
// features decides the direction of near-zero gradients, and in these small models (16
// images) moves some gradients by percents within ten steps. Equal features, and an equal step
// from equal features, are the claims that can be tested exactly.
//
// The references are generated at test time into a temporary folder (a few MB per case, too
// many to commit); scripts/setup installs the python3-torch they need.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "models/prefix.h"
#include "train/trainer.h"

namespace normlab::train {
namespace {

namespace fs = std::filesystem;

constexpr double kRelTol = 1e-5;
constexpr int64_t kSteps = 10;

fs::path source_dir() {
  if (const char* env = std::getenv("NORMLAB_SOURCE_DIR")) return env;
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

// The generator's output folder, removed when the process exits. A destructor, not
// std::atexit: a handler registered while a function-local static is being initialised runs
// after that static is destroyed, so it saw an empty path and every run left its folder in
// the temp dir.
struct FixtureFolder {
  fs::path path;
  ~FixtureFolder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Runs the generator once per process.
const fs::path& fixture_dir() {
  static const FixtureFolder dir{[] {
    std::string tmpl = (fs::temp_directory_path() / "normlab-step-parity-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    const fs::path d = tmpl;
    const fs::path log = d / "generator.log";
    const std::string python =
        std::getenv("NORMLAB_PYTHON") ? std::getenv("NORMLAB_PYTHON") : "/usr/bin/python3";
    const std::string cmd = python + " " +
                            (source_dir() / "scripts" / "gen_step_fixtures.py").string() + " " +
                            d.string() + " > " + log.string() + " 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::ifstream in(log);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      throw std::runtime_error(
          "scripts/gen_step_fixtures.py failed (it needs python3-torch and "
          "python3-torchvision: scripts/setup installs them):\n" +
          text);
    }
    return d;
  }()};
  return dir.path;
}

c10::impl::GenericDict load(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open fixture " + path.string());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toGenericDict();
}

std::map<std::string, torch::Tensor> tensors(const c10::impl::GenericDict& d,
                                             const std::string& key) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& e : d.at(key).toGenericDict()) {
    out[e.key().toStringRef()] = e.value().toTensor();
  }
  return out;
}

double number(const c10::impl::GenericDict& d, const std::string& key) {
  return d.at(key).toTensor().item<double>();
}

// The largest |value| over a family of tensors (all gradients of a step, all weights, ...).
double family_max(const std::map<std::string, torch::Tensor>& family) {
  double m = 0;
  for (const auto& [name, t] : family) {
    if (t.is_floating_point()) m = std::max(m, t.abs().max().item<double>());
  }
  return m;
}

// max |got - want| <= kRelTol * max(max |want|, floor): relative to the tensor, and at least to
// `floor`, the largest value of its kind. The floor makes a gradient that is zero up to
// rounding (a bias in front of a train-mode BatchNorm: the normalisation removes it) compare
// as zero; its rounding residue (1e-8) differs between equally valid summation orders.
::testing::AssertionResult close(const std::string& what, const torch::Tensor& got,
                                 const torch::Tensor& want, double floor = 0,
                                 double rel_tol = kRelTol) {
  if (!got.defined()) return ::testing::AssertionFailure() << what << ": no value";
  if (got.sizes() != want.sizes()) {
    return ::testing::AssertionFailure()
           << what << ": shape " << got.sizes() << " vs " << want.sizes();
  }
  torch::Tensor g = got.detach().cpu().to(torch::kDouble).contiguous();
  torch::Tensor w = want.to(torch::kDouble);
  const double scale = std::max({w.abs().max().item<double>(), floor, 1e-12});
  const double err = (g - w).abs().max().item<double>();
  if (err <= rel_tol * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": max abs error " << err << " vs scale " << scale
                                       << " (relative " << err / scale << ")";
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(item);
  return out;
}

models::Classifier build(const c10::impl::GenericDict& f) {
  const std::string kind = f.at("model").toStringRef();
  models::ModelOptions m;
  m.num_classes = 10;
  m.in_channels = static_cast<int64_t>(number(f, "channels"));
  m.input_hw = static_cast<int64_t>(number(f, "hw"));
  m.head.dropout = 0;
  if (kind == "s4") {
    m.backbone = "mlp";
    m.depth = static_cast<int64_t>(number(f, "depth"));
    m.width = static_cast<int64_t>(number(f, "width"));
    m.norm_options.momentum = number(f, "bn_momentum");
    m.head.kind = "linear";
  } else {
    m.backbone = "mobilenet_v2";
    m.width_mult = number(f, "width_mult");
    m.head.kind = kind == "s0" ? "mlp" : "norm_mlp";
    m.head.hidden = static_cast<int64_t>(number(f, "hidden"));
    m.head.norm = f.at("norm").toStringRef();
  }
  models::Classifier model = models::build_model(m);
  // The initial state, strictly: every name on both sides.
  std::map<std::string, torch::Tensor> mine;
  for (const auto& p : model->named_parameters()) mine[p.key()] = p.value();
  for (const auto& b : model->named_buffers()) mine[b.key()] = b.value();
  const auto state = tensors(f, "state");
  EXPECT_EQ(mine.size(), state.size());
  torch::NoGradGuard no_grad;
  for (const auto& [name, value] : state) {
    auto it = mine.find(name);
    if (it == mine.end()) throw std::runtime_error("normlab's model lacks " + name);
    it->second.copy_(value);
  }
  return model;
}

TrainOptions options(const c10::impl::GenericDict& f) {
  TrainOptions o;
  o.epochs = 1;
  o.progress = false;
  o.trainable = split_commas(f.at("trainable").toStringRef());
  o.frozen_bn = f.at("frozen_bn").toStringRef() == "freeze" ? FrozenBatchNorm::kFreeze
                                                            : FrozenBatchNorm::kUpdate;
  o.clip.max_norm = number(f, "clip");
  o.label_smoothing = number(f, "label_smoothing");
  o.optimizer.name = f.at("optimizer").toStringRef();
  o.optimizer.lr = number(f, "lr");
  o.optimizer.weight_decay = number(f, "weight_decay");
  o.optimizer.momentum = number(f, "momentum");
  if (o.optimizer.name != "sgd") o.optimizer.eps = number(f, "eps");
  if (number(f, "group_lr") > 0) o.param_groups.push_back({"features.18", number(f, "group_lr")});
  return o;
}

// Everything one step computes, captured at the trainer's hooks.
class Capture : public Observer {
 public:
  void after_backward(const StepContext& ctx) override {
    loss.push_back(ctx.loss.item<double>());
    if (ctx.global_step == 0) grad1 = grads(ctx);
  }
  void after_clip(const StepContext& ctx) override {
    pre_clip.push_back(ctx.pre_clip_norm.item<double>());
    if (ctx.global_step == 0) clipped1 = grads(ctx);
  }
  std::vector<double> loss, pre_clip;
  std::map<std::string, torch::Tensor> grad1, clipped1;

 private:
  static std::map<std::string, torch::Tensor> grads(const StepContext& ctx) {
    std::map<std::string, torch::Tensor> out;
    for (size_t i = 0; i < ctx.trainable->names.size(); ++i) {
      out[ctx.trainable->names[i]] = ctx.trainable->params[i].grad().clone();
    }
    return out;
  }
};

torch::Tensor optimizer_state(torch::optim::Optimizer& opt, const torch::Tensor& p,
                              const std::string& key) {
  auto* state = find_param_state(opt, p);
  if (state == nullptr) return torch::Tensor();
  if (auto* a = dynamic_cast<torch::optim::AdamParamState*>(state)) {
    return key == "exp_avg"      ? a->exp_avg()
           : key == "exp_avg_sq" ? a->exp_avg_sq()
                                 : torch::Tensor();
  }
  if (auto* a = dynamic_cast<torch::optim::AdamWParamState*>(state)) {
    return key == "exp_avg"      ? a->exp_avg()
           : key == "exp_avg_sq" ? a->exp_avg_sq()
                                 : torch::Tensor();
  }
  if (auto* s = dynamic_cast<torch::optim::SGDParamState*>(state)) {
    return key == "momentum_buffer" ? s->momentum_buffer() : torch::Tensor();
  }
  return torch::Tensor();
}

// Compares parameters, optimizer state and buffers after step `tag` ("1" or "10"). `prefix`
// (engine path) holds the buffers of the stages before `cut`.
void expect_state(const c10::impl::GenericDict& f, const std::string& tag, Trainer& t,
                  models::ClassifierImpl* prefix, int64_t cut) {
  const auto& names = t.trainable().names;
  const auto& params = t.trainable().params;
  const auto want_params = tensors(f, "param" + tag);
  EXPECT_EQ(want_params.size(), names.size()) << "trainable parameters";
  const double weight_floor = family_max(want_params);
  for (size_t i = 0; i < names.size(); ++i) {
    auto it = want_params.find(names[i]);
    ASSERT_NE(it, want_params.end()) << "PyTorch does not train " << names[i];
    EXPECT_TRUE(close("step " + tag + " weight " + names[i], params[i], it->second, weight_floor));
  }
  const auto want_opt = tensors(f, "opt" + tag);
  std::map<std::string, std::map<std::string, torch::Tensor>> fields;  // field -> name -> value
  for (const auto& [key, want] : want_opt) fields[key.substr(key.rfind('/') + 1)][key] = want;
  for (const auto& [field, family] : fields) {
    const double floor = family_max(family);
    for (const auto& [key, want] : family) {
      const std::string name = key.substr(0, key.rfind('/'));
      const auto pos = std::find(names.begin(), names.end(), name) - names.begin();
      ASSERT_LT(static_cast<size_t>(pos), names.size()) << key;
      EXPECT_TRUE(close("step " + tag + " optimizer " + key,
                        optimizer_state(t.optimizer(), params[static_cast<size_t>(pos)], field),
                        want, floor));
    }
  }
  std::map<std::string, torch::Tensor> buffers;
  for (const auto& b : t.model()->named_buffers()) buffers[b.key()] = b.value();
  if (prefix != nullptr) {
    for (const auto& b : prefix->named_buffers()) {
      if (prefix->stage_of(b.key()) < cut) buffers[b.key()] = b.value();
    }
  }
  const auto want_state = tensors(f, "state" + tag);
  std::map<std::string, torch::Tensor> means, vars;
  for (const auto& [name, want] : want_state) {
    if (name.find("running_mean") != std::string::npos) means[name] = want;
    if (name.find("running_var") != std::string::npos) vars[name] = want;
  }
  const double mean_floor = family_max(means), var_floor = family_max(vars);
  for (const auto& [name, want] : want_state) {
    if (name.find("running_") == std::string::npos &&
        name.find("num_batches_tracked") == std::string::npos) {
      continue;
    }
    auto it = buffers.find(name);
    ASSERT_NE(it, buffers.end()) << "normlab's model lacks buffer " << name;
    if (name.find("num_batches_tracked") != std::string::npos) {
      EXPECT_EQ(it->second.item<int64_t>(), want.item<int64_t>()) << "step " << tag << " " << name;
    } else {
      const bool is_mean = name.find("running_mean") != std::string::npos;
      EXPECT_TRUE(close("step " + tag + " buffer " + name, it->second, want,
                        is_mean ? mean_floor : var_floor));
    }
  }
}

void run_case(const std::string& file, bool engine) {
  SCOPED_TRACE(file + (engine ? " (engine path)" : " (whole model)"));
  const auto f = load(fixture_dir() / (file + ".pt"));
  TrainOptions o = options(f);
  models::Classifier model = build(f);
  const int64_t cut = engine ? models::cut_point(*model, o.trainable) : 0;
  models::Classifier prefix = nullptr;
  if (engine) {
    ASSERT_GT(cut, 0) << "no frozen prefix to run apart";
    prefix = build(f);
    prefix->train(o.frozen_bn == FrozenBatchNorm::kUpdate);
    o.input_stage = cut;
  }
  models::ClassifierImpl* prefix_ptr = engine ? prefix.get() : nullptr;
  Trainer t(model, o, torch::kCPU);
  Capture capture;
  t.add_observer(&capture);
  const torch::Tensor x = f.at("x").toTensor(), y = f.at("y").toTensor();
  t.begin_epoch(0, kSteps);
  for (int64_t s = 0; s < kSteps; ++s) {
    torch::Tensor input = x[s];
    if (engine) {
      torch::NoGradGuard no_grad;
      input = prefix->forward_prefix(input, cut);
    }
    t.train_step(input, {y[s], {}, {}});
    if (s == 0) {
      expect_state(f, "1", t, prefix_ptr, cut);
      const auto grads = tensors(f, "grad1"), clipped = tensors(f, "clipped1");
      const double grad_floor = family_max(grads), clipped_floor = family_max(clipped);
      for (const auto& [name, want] : grads) {
        EXPECT_TRUE(close("step 1 gradient " + name, capture.grad1[name], want, grad_floor));
      }
      for (const auto& [name, want] : clipped) {
        EXPECT_TRUE(
            close("step 1 clipped gradient " + name, capture.clipped1[name], want, clipped_floor));
      }
    }
  }
  expect_state(f, std::to_string(kSteps), t, prefix_ptr, cut);
  const torch::Tensor loss = f.at("loss").toTensor(), norm = f.at("pre_clip_norm").toTensor();
  ASSERT_EQ(capture.loss.size(), static_cast<size_t>(kSteps));
  EXPECT_TRUE(close("losses", torch::tensor(capture.loss), loss));
  EXPECT_TRUE(close("pre-clip norms", torch::tensor(capture.pre_clip), norm));
}

// The engine's prefix (channels-last; chunked in eval mode) computes the features of the NCHW
// forward: within 1e-5 in eval mode; in train mode within 2e-4 (measured 1.0e-4 here: each of
// the 17 train-mode BatchNorms recomputes its batch statistics in another summation order).
TEST(EnginePrefix, MatchesNchwInTrainAndEvalMode) {
  const auto f = load(fixture_dir() / "s0_bn_clip0_freeze.pt");
  const torch::Tensor x = f.at("x").toTensor()[0];
  for (bool train : {false, true}) {
    models::Classifier nchw = build(f), nhwc = build(f);
    const int64_t cut = models::cut_point(*nchw, {"features.18"});
    nchw->train(train);
    nhwc->train(train);
    models::to_channels_last(*nhwc);
    torch::NoGradGuard no_grad;
    torch::Tensor want = nchw->forward_prefix(x, cut);
    torch::Tensor got = models::run_prefix(*nhwc, models::channels_last(x), cut).contiguous();
    const double tol = train ? 2e-4 : kRelTol;
    const std::string mode = train ? "train" : "eval";
    EXPECT_TRUE(close(mode + "-mode prefix output", got, want, 0, tol));
    for (const auto& b : nchw->named_buffers()) {
      if (!b.value().is_floating_point()) continue;
      EXPECT_TRUE(close(mode + "-mode buffer " + b.key(), nhwc->named_buffers()[b.key()], b.value(),
                        0, tol));
    }
  }
}

// The engine hands the tails channels-last maps (study/feature_source.cpp: from the shared
// prefix and from the feature cache), so that their BatchNorm runs on ATen's channels-last
// kernels. The same features in either layout give the same step up to rounding: the loss within
// 1e-5, and every gradient and running statistic about as close to a float64 step as the NCHW
// step is (at most 4 times as far, plus 5e-5 of the largest value of its kind).
// (Not 1e-5 between the layouts: these tails train BatchNorm on 16 maps of 1x1, whose backward,
// g - mean(g) - x_hat * mean(g * x_hat), cancels; measured up to 5e-4 relative to the largest
// gradient between two equally valid summation orders, with NCHW itself 3e-4 from float64, and
// for one weight channels-last 3.6 times farther from float64 than NCHW, at 3e-5 relative.)
// A layout bug (a view that reads channels-last memory as NCHW) is off by the values' size.
TEST(EngineTail, ChannelsLastFeaturesGiveTheNchwStep) {
  for (const char* file : {"s0_bn_clip0_update", "s0_bn_clip0_freeze", "s0_ln_clip0.1_freeze",
                           "s0_frn_clip0_update", "s3_freeze"}) {
    SCOPED_TRACE(file);
    const auto f = load(fixture_dir() / (std::string(file) + ".pt"));
    TrainOptions o = options(f);
    models::Classifier prefix = build(f);
    const int64_t cut = models::cut_point(*prefix, o.trainable);
    ASSERT_GT(cut, 0);
    prefix->train(o.frozen_bn == FrozenBatchNorm::kUpdate);
    o.input_stage = cut;
    torch::Tensor h;
    {
      torch::NoGradGuard no_grad;
      h = prefix->forward_prefix(f.at("x").toTensor()[0], cut).contiguous();
    }
    ASSERT_EQ(h.dim(), 4);
    const torch::Tensor y = f.at("y").toTensor()[0];
    // 0: NCHW, 1: channels-last, 2: NCHW in float64 (the reference for rounding).
    std::map<std::string, torch::Tensor> buffers[3];
    Capture capture[3];
    for (int k = 0; k < 3; ++k) {
      models::Classifier model = build(f);
      if (k == 2) model->to(torch::kDouble);
      Trainer t(model, o, torch::kCPU);
      t.add_observer(&capture[k]);
      t.begin_epoch(0, 1);
      const torch::Tensor input = k == 1   ? models::channels_last(h)
                                  : k == 2 ? h.to(torch::kDouble)
                                           : h;
      t.train_step(input, {y, {}, {}});
      for (const auto& b : t.model()->named_buffers()) buffers[k][b.key()] = b.value();
    }
    ASSERT_FALSE(models::channels_last(h).is_contiguous());
    EXPECT_TRUE(close("loss", torch::tensor(capture[1].loss), torch::tensor(capture[0].loss)));
    // |channels-last - float64| <= 4 |NCHW - float64| + 5e-5 of the family's scale.
    auto as_accurate = [](const std::string& what, const torch::Tensor& cl,
                          const torch::Tensor& nchw, const torch::Tensor& ref, double scale) {
      const torch::Tensor r = ref.to(torch::kDouble);
      const double e_cl = (cl.to(torch::kDouble) - r).abs().max().item<double>();
      const double e_nchw = (nchw.to(torch::kDouble) - r).abs().max().item<double>();
      if (e_cl <= 4 * e_nchw + 5e-5 * scale) return ::testing::AssertionSuccess();
      return ::testing::AssertionFailure()
             << what << ": channels-last is " << e_cl << " from float64, NCHW " << e_nchw
             << " (scale " << scale << ")";
    };
    const double floor = family_max(capture[2].grad1);
    for (const auto& [name, want] : capture[2].grad1) {
      EXPECT_TRUE(as_accurate("gradient " + name, capture[1].grad1[name], capture[0].grad1[name],
                              want, std::max(floor, want.abs().max().item<double>())));
    }
    for (const auto& [name, want] : buffers[2]) {
      if (!want.is_floating_point()) continue;
      EXPECT_TRUE(as_accurate("buffer " + name, buffers[1][name], buffers[0][name], want,
                              want.abs().max().item<double>()));
    }
  }
}

class StepParity : public ::testing::TestWithParam<std::string> {};

TEST_P(StepParity, WholeModelMatchesPyTorch) { run_case(GetParam(), false); }

TEST_P(StepParity, EnginePathMatchesPyTorch) {
  if (GetParam().find("_all_") != std::string::npos) GTEST_SKIP() << "no frozen prefix";
  run_case(GetParam(), true);
}

std::vector<std::string> cases() {
  std::vector<std::string> out;
  for (const char* norm : {"bn", "ln", "frn"}) {
    for (const char* clip : {"0", "0.1"}) {
      for (const char* frozen : {"update", "freeze"}) {
        out.push_back(std::string("s0_") + norm + "_clip" + clip + "_" + frozen);
      }
    }
  }
  out.push_back("s3_update");
  out.push_back("s3_freeze");
  for (const char* m : {"0.1", "0.8"}) {
    out.push_back(std::string("s4_m") + m + "_all_update");
    out.push_back(std::string("s4_m") + m + "_top_update");
    out.push_back(std::string("s4_m") + m + "_top_freeze");
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, StepParity, ::testing::ValuesIn(cases()), [](const auto& info) {
  std::string n = info.param;
  for (char& c : n) {
    if (c == '.') c = '_';
  }
  return n;
});

}  // namespace
}  // namespace normlab::train
