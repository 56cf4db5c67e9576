#include <gtest/gtest.h>

#include "core/error.h"
#include "error_of.h"
#include "study/config.h"
#include "study/plan_check.h"
#include "study/run_options.h"
#include "study/spec.h"

namespace normlab::study {
namespace {

using normlab::testing::error_of;

TEST(Config, ScheduleAndEarlyStoppingDefaultsAreTheStructs) {
  const Json& d = default_run_config();
  EXPECT_EQ(d["train"]["schedule"], option_defaults<train::ScheduleOptions>());
  EXPECT_EQ(d["train"]["schedule"]["patience"], train::ScheduleOptions{}.patience);
  EXPECT_EQ(d["train"]["early_stopping"]["restore_best"],
            train::EarlyStoppingOptions{}.restore_best);
  Json cfg = d;
  set_config_value(cfg, "train.schedule.factor", Json(1.5), "t");
  std::string msg;
  try {
    validate_run_config(cfg, "spec.toml");
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("spec.toml: key 'train.schedule.factor'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("in (0, 1)"), std::string::npos) << msg;
}

TEST(Config, DefaultsAreValid) {
  EXPECT_NO_THROW(validate_run_config(default_run_config(), "defaults"));
}

TEST(Config, UnknownKeyIsRefusedWithSuggestion) {
  Json cfg = default_run_config();
  std::string msg = error_of([&] {
    merge_config(cfg, Json::parse(R"({"train": {"optimzer": {"lr": 0.1}}})"), "f.toml [run]");
  });
  EXPECT_NE(msg.find("f.toml [run]: key 'train.optimzer'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'optimizer'"), std::string::npos) << msg;
  EXPECT_EQ(cfg, default_run_config()) << "a refused overlay must not change the config";
}

TEST(Config, WrongTypesAreRefused) {
  Json cfg = default_run_config();
  EXPECT_NE(error_of([&] {
              set_config_value(cfg, "train.epochs", Json(2.5), "x");
            }).find("expected an integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              set_config_value(cfg, "model.head.norm", Json(3), "x");
            }).find("expected a string"),
            std::string::npos);
  Json lists = default_run_config();
  set_config_value(lists, "data.classes", Json::parse("[1, \"a\"]"), "x");
  EXPECT_NE(error_of([&] { validate_run_config(lists, "x"); }).find("'data.classes'"),
            std::string::npos);
  // An integer is fine where a float is expected.
  set_config_value(cfg, "train.optimizer.lr", Json(1), "x");
  EXPECT_EQ(config_at(cfg, "train.optimizer.lr").get<double>(), 1.0);
}

TEST(Config, CliValues) {
  EXPECT_EQ(parse_cli_value("3"), Json(3));
  EXPECT_EQ(parse_cli_value("0.1"), Json(0.1));
  EXPECT_EQ(parse_cli_value("true"), Json(true));
  EXPECT_EQ(parse_cli_value("bn"), Json("bn"));
  EXPECT_EQ(parse_cli_value("gn:16"), Json("gn:16"));
  EXPECT_EQ(parse_cli_value("[5,6]"), Json::parse("[5,6]"));
  EXPECT_EQ(parse_cli_value("\"1\""), Json("1"));
}

TEST(RunOptions, InvalidValuesNameTheKey) {
  auto check = [](const char* key, Json value, const char* needle) {
    Json cfg = default_run_config();
    set_config_value(cfg, key, value, "t");
    std::string msg = error_of([&] { validate_run_config(cfg, "spec.toml"); });
    EXPECT_NE(msg.find(std::string("'") + key + "'"), std::string::npos) << key << ": " << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << key << ": " << msg;
  };
  check("model.head.norm", Json("batchnorm"), "batchnorm");
  check("train.optimizer.name", Json("rmsprop"), "adam");
  check("data.dataset", Json("imagenet"), "fashion-mnist");
  check("train.epochs", Json(0), "> 0");
  check("train.frozen_bn", Json("sometimes"), "update");
  check("data.val_fraction", Json(1.5), "[0, 1]");
  check("data.val_from", Json("holdout"), "test");
  check("data.feature_cache", Json("yes"), "require");
  check("train.schedule.name", Json("linear"), "cosine");
  check("train.early_stopping.monitor", Json("val/accuracy"), "val/acc");
  check("train.precision", Json("bf16"), "CUDA");
  check("data.augment.rotate", Json(200.0), "180");
  Json cfg = default_run_config();
  set_config_value(cfg, "train.param_groups", Json::parse(R"([{"pattern": "head", "lrr": 1}])"),
                   "t");
  EXPECT_NE(error_of([&] { validate_run_config(cfg, "s"); }).find("param_groups.lrr"),
            std::string::npos);
}

const char* kSpec = R"toml(
[study]
name = "demo"
seeds = [0, 1]

[pretrain]
data.classes = [0, 1]
train.epochs = 1

[run]
model.weights = "pretrain"
model.weights_skip = ["head"]
data.classes = [2, 3]
train.trainable = ["features.3", "head"]

[grid]
"model.head.norm" = ["bn", "ln", "frn"]
train.clip_norm = [0.0, 0.1]

[smoke]
seeds = [7]
run.train.epochs = 1
run.data.dataset = "synthetic"
pretrain.data.dataset = "synthetic"
)toml";

TEST(Spec, ExpandsGridTimesSeeds) {
  Spec spec = parse_spec(kSpec, "demo.toml");
  Plan plan = expand(spec, {});
  ASSERT_EQ(plan.runs.size(), 12u);
  ASSERT_EQ(plan.pretrains.size(), 1u);
  EXPECT_EQ(plan.runs[0].name, "norm=bn clip_norm=0.0 seed=0");
  EXPECT_EQ(plan.runs[1].name, "norm=bn clip_norm=0.1 seed=0");
  EXPECT_EQ(plan.runs[5].group, "norm=frn clip_norm=0.1");
  EXPECT_EQ(plan.runs[6].config["seed"], 1);
  // Each run's weights point at the pretraining run's config hash.
  std::string ref = plan.runs[0].config["model"]["weights"];
  EXPECT_EQ(ref.rfind("pretrain:", 0), 0u);
  for (const auto& r : plan.runs) EXPECT_EQ(r.config["model"]["weights"], ref);
  // All 12 configs differ.
  std::set<std::string> texts;
  for (const auto& r : plan.runs) texts.insert(canonical_text(r.config));
  EXPECT_EQ(texts.size(), 12u);
  EXPECT_EQ(plan.pretrains[0].config["data"]["classes"], Json::parse("[0,1]"));
}

TEST(Spec, SetNarrowsAxesAndSmokeApplies) {
  Spec spec = parse_spec(kSpec, "demo.toml");
  ExpandOptions o;
  o.sets = {{"model.head.norm", "ln"}, {"study.seeds", "[3]"}, {"pretrain.train.epochs", "2"}};
  Plan plan = expand(spec, o);
  ASSERT_EQ(plan.runs.size(), 2u);
  EXPECT_EQ(plan.runs[0].config["model"]["head"]["norm"], "ln");
  EXPECT_EQ(plan.runs[0].config["seed"], 3);
  EXPECT_EQ(plan.pretrains[0].config["train"]["epochs"], 2);

  ExpandOptions s;
  s.smoke = true;
  Plan smoke = expand(spec, s);
  ASSERT_EQ(smoke.runs.size(), 6u);
  EXPECT_EQ(smoke.runs[0].config["data"]["dataset"], "synthetic");
  EXPECT_EQ(smoke.runs[0].config["seed"], 7);
  EXPECT_EQ(smoke.pretrains[0].config["data"]["dataset"], "synthetic");
}

// --set takes JSON or, as a study file writes it, TOML: an inline table in an array.
TEST(Spec, SetAcceptsTomlInlineTables) {
  Spec spec = parse_spec(kSpec, "demo.toml");
  for (const char* text : {R"([{ pattern = "features.3", lr = 1e-4 }])",
                           R"([{"pattern": "features.3", "lr": 1e-4}])"}) {
    ExpandOptions o;
    o.sets = {{"train.param_groups", text}};
    Plan plan = expand(spec, o);
    const auto& groups = plan.runs.at(0).config["train"]["param_groups"];
    ASSERT_TRUE(groups.is_array()) << text;
    ASSERT_EQ(groups.size(), 1u) << text;
    EXPECT_EQ(groups[0]["pattern"], "features.3") << text;
    EXPECT_DOUBLE_EQ(groups[0]["lr"].get<double>(), 1e-4) << text;
  }
}

TEST(Spec, BadFilesAreRefusedWithLocation) {
  EXPECT_NE(error_of([] { parse_spec("[run]\ntrain.epochs = = 3\n", "a.toml"); }).find("a.toml"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_spec("[run]\ntrain.epochs = = 3\n", "a.toml"); }).find("line 2"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_spec("[runs]\n", "b.toml"); }).find("'runs'"), std::string::npos);
  EXPECT_NE(error_of([] {
              parse_spec("[run]\nmodel.hed.norm = 'bn'\n", "c.toml");
            }).find("c.toml [run]: key 'model.hed'"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_spec("[grid]\n'model.norm' = []\n", "d.toml"); }).find("non-empty"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse_spec("[grid]\n'model.nrm' = ['bn']\n", "e.toml");
              expand(parse_spec("[grid]\n'model.nrm' = ['bn']\n", "e.toml"), {});
            }).find("model.nrm"),
            std::string::npos);
  Spec spec = parse_spec(kSpec, "demo.toml");
  ExpandOptions o;
  o.sets = {{"train.epoch", "3"}};
  EXPECT_NE(error_of([&] { expand(spec, o); }).find("--set train.epoch=3"), std::string::npos);
  EXPECT_NE(error_of([] {
              expand(parse_spec("[run]\nmodel.weights = 'pretrain'\n", "f.toml"), {});
            }).find("no [pretrain]"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              expand(parse_spec("[grid]\n'model.norm' = ['bn', 'xn']\n", "g.toml"), {});
            }).find("xn"),
            std::string::npos);
}

}  // namespace
}  // namespace normlab::study

namespace normlab::study {
namespace {

// Expands kSpec with one more [run] line; returns the error message ("" if none).
std::string plan_error(const std::string& extra) {
  std::string text = kSpec;
  text.replace(text.find("[grid]"), 0, extra + "\n\n");
  try {
    expand(parse_spec(text, "demo.toml"), {});
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PlanCheck, EveryPatternIsCheckedAgainstTheModelBeforeTraining) {
  EXPECT_EQ(plan_error(""), "");
  auto refused = [](const std::string& line, const std::vector<std::string>& needles) {
    std::string e = plan_error(line);
    ASSERT_FALSE(e.empty()) << line;
    for (const auto& n : needles) EXPECT_NE(e.find(n), std::string::npos) << e;
  };
  refused("train.param_groups = [{ pattern = \"featres.3\", lr = 1e-4 }]",
          {"demo.toml", "train.param_groups", "featres.3", "features, head"});
  refused("probe.grad_hist = { enabled = true, params = [\"haed.0\"] }",
          {"probe.grad_hist.params", "haed.0"});
  refused("probe.landscape = { enabled = true, params = \"head.9\" }",
          {"probe.landscape.params", "head.9"});
  refused("model.norm_overrides = { \"features.*.nrom\" = \"gn:2\" }", {"features.*.nrom"});
  // Globs inside a component go through the same matcher.
  EXPECT_EQ(plan_error("probe.grad_hist = { enabled = true, params = [\"feat*.3\"] }"), "");
}

}  // namespace
}  // namespace normlab::study

// S4's configuration surface: the estimation-shift keys refused before training with the key
// named, and named-variant grid axes.
namespace normlab::study {
namespace {

const char* kMlp = R"toml(
[study]
name = "s4"
seeds = [0]

[run]
data.dataset = "synthetic"
data.synthetic = { size = 64, classes = 4, hw = 6 }
model.backbone = "mlp"
model.depth = 2
model.width = 8
)toml";

// Expands kMlp with `extra` appended to [run]; returns the error message ("" if none).
std::string run_error(const std::string& extra) {
  try {
    expand(parse_spec(std::string(kMlp) + extra + "\n", "s4.toml"), {});
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_refused(const std::string& extra, const std::vector<std::string>& needles) {
  const std::string e = run_error(extra);
  ASSERT_FALSE(e.empty()) << "accepted: " << extra;
  for (const auto& n : needles) EXPECT_NE(e.find(n), std::string::npos) << n << " in: " << e;
}

TEST(S4Config, EstimationShiftSettingsAreCheckedBeforeTraining) {
  EXPECT_EQ(run_error("probe.esm = { enabled = true }\nmodel.norm = \"dmbn\""), "");
  // ESM needs running estimates somewhere: the BN head of an "ln" backbone is enough.
  EXPECT_EQ(run_error("probe.esm = { enabled = true }\nmodel.norm = \"ln\""), "");
  expect_refused("probe.esm = { enabled = true }\nmodel.norm = \"ln\"\nmodel.head.norm = \"ln\"",
                 {"s4.toml", "probe.esm", "BatchNorm"});
  expect_refused("model.norm = \"dmbn\"\nmodel.dmbn.candidates = []", {"model.dmbn.candidates"});
  expect_refused("model.norm = \"dmbn\"\nmodel.dmbn.candidates = [0.0]",
                 {"model.dmbn.candidates", "(0, 1]"});
  expect_refused("model.norm = \"dmbn\"\nmodel.dmbn.candidates = [0.5, 1.5]",
                 {"model.dmbn.candidates", "1.5"});
  EXPECT_EQ(run_error("model.norm = \"dmbn\"\nmodel.dmbn.candidates = [0.05, 1.0]"), "");
  expect_refused("model.dmbn.order = \"backwards\"", {"model.dmbn.order", "sequential"});
  expect_refused("model.dmbn.shadows = \"reset\"", {"model.dmbn.shadows", "restart"});
  // Splits that the run does not have.
  expect_refused("probe.esm = { enabled = true, split = \"val\" }\ndata.val_fraction = 0.0",
                 {"probe.esm.split", "'val'"});
  EXPECT_EQ(run_error("probe.esm = { enabled = true, split = \"val\" }\ndata.val_fraction = 0.0\n"
                      "data.val_from = \"same\""),
            "");
  expect_refused("probe.esm = { enabled = true, split = \"test\" }\ndata.test = false",
                 {"probe.esm.split", "'test'"});
  expect_refused("model.norm = \"dmbn\"\nmodel.dmbn.split = \"test\"\ndata.test = false",
                 {"model.dmbn.split", "'test'"});
  expect_refused(
      "model.norm = \"ln\"\nmodel.norm_overrides = { \"features.2.1\" = \"dmbn\" }\n"
      "model.dmbn.split = \"val\"\ndata.val_fraction = 0.0",
      {"model.dmbn.split"});
  // model.dmbn is not checked against the splits when no layer is a DMBN.
  EXPECT_EQ(run_error("model.dmbn.split = \"test\"\ndata.test = false"), "");
}

TEST(S4Config, BnBfnMomentumAndFullBatchSettings) {
  for (const char* norm : {"bn", "dmbn", "bn:momentum=0.5"}) {
    expect_refused(std::string("model.bn_bfn = \"alternate\"\nmodel.bfn_norm = \"") + norm + "\"",
                   {"model.bfn_norm", norm});
  }
  EXPECT_EQ(run_error("model.bn_bfn = \"alternate\"\nmodel.bfn_norm = \"gn:2\""), "");
  expect_refused("model.bn_bfn = \"every-other\"", {"model.bn_bfn", "xbn-p2"});
  expect_refused("model.bn_bfn = \"xbn-p2\"", {"model.bn_bfn", "mlp"});  // no bottlenecks
  expect_refused("model.norm_overrides = { \"features.1.1\" = \"bn:momentum=2\" }",
                 {"model.norm_overrides.features.1.1", "bn:momentum=2"});
  EXPECT_EQ(run_error("model.norm_overrides = { \"features.1.1\" = \"bn:momentum=0.8\" }"), "");
  expect_refused("data.train_from = \"test\"", {"data.val_from", "same"});
  expect_refused("data.train_from = \"validation\"", {"data.train_from"});
  EXPECT_EQ(run_error("data.train_from = \"test\"\ndata.val_from = \"same\"\n"
                      "train.full_batch = true"),
            "");
  expect_refused("train.full_batch = \"yes\"", {"train.full_batch"});
}

const char* kVariants = R"toml(
[study]
name = "variants"
seeds = [0, 1]

[run]
data.dataset = "synthetic"
data.synthetic = { size = 64, classes = 4, hw = 6 }
model.backbone = "mlp"
model.depth = 2
model.width = 8

[grid]
"data.dataset" = ["synthetic"]
strategy = [
  { name = "slow", model.bn_momentum = 0.05 },
  { name = "dmbn", model.norm = "dmbn", model.dmbn.order = "sequential", train.epochs = 5 },
]

[smoke]
grid.strategy = [{ name = "only", model.norm = "ln", model.head.norm = "ln" }]
)toml";

Plan variants(std::vector<std::pair<std::string, std::string>> sets = {}, bool smoke = false,
              const std::string& text = kVariants) {
  ExpandOptions o;
  o.sets = std::move(sets);
  o.smoke = smoke;
  return expand(parse_spec(text, "variants.toml"), o);
}

// kVariants with its strategy axis replaced by `axis` (a TOML value).
std::string with_strategies(const std::string& axis) {
  std::string text = kVariants;
  const auto begin = text.find("strategy = [");
  const auto end = text.find("]\n\n[smoke]") + 1;
  text.replace(begin, end - begin, "strategy = " + axis);
  return text;
}

TEST(SpecVariants, ANamedAxisAppliesEachVariantsSettingsTogether) {
  Plan plan = variants();
  ASSERT_EQ(plan.runs.size(), 4u);  // 2 variants x 2 seeds; the quoted axis has one value
  EXPECT_EQ(plan.runs[0].name, "dataset=synthetic strategy=slow seed=0");
  EXPECT_EQ(plan.runs[0].group, "dataset=synthetic strategy=slow");
  EXPECT_EQ(plan.runs[1].name, "dataset=synthetic strategy=dmbn seed=0");
  EXPECT_EQ(plan.runs[3].name, "dataset=synthetic strategy=dmbn seed=1");
  const Json& slow = plan.runs[0].config;
  EXPECT_DOUBLE_EQ(slow["model"]["bn_momentum"].get<double>(), 0.05);
  EXPECT_EQ(slow["model"]["norm"], "bn");
  EXPECT_EQ(slow["train"]["epochs"], default_run_config()["train"]["epochs"]);
  EXPECT_FALSE(slow.contains("name"));
  const Json& dmbn = plan.runs[1].config;
  EXPECT_EQ(dmbn["model"]["norm"], "dmbn");
  EXPECT_EQ(dmbn["model"]["dmbn"]["order"], "sequential");
  EXPECT_EQ(dmbn["model"]["dmbn"]["shadows"], "restart");  // the rest keeps its defaults
  EXPECT_EQ(dmbn["train"]["epochs"], 5);
  EXPECT_DOUBLE_EQ(dmbn["model"]["bn_momentum"].get<double>(), 0.1);
  EXPECT_EQ(dmbn["data"]["dataset"], "synthetic");
  EXPECT_FALSE(dmbn.contains("strategy"));
}

TEST(SpecVariants, SetNarrowsToOneVariantByName) {
  Plan plan = variants({{"strategy", "dmbn"}});
  ASSERT_EQ(plan.runs.size(), 2u);
  for (const auto& r : plan.runs) EXPECT_EQ(r.config["model"]["norm"], "dmbn") << r.name;
  const std::string e = error_of([] { variants({{"strategy", "dmbm"}}); });
  EXPECT_NE(e.find("--set strategy=dmbm"), std::string::npos) << e;
  EXPECT_NE(e.find("dmbm"), std::string::npos) << e;
  EXPECT_NE(e.find("slow, dmbn"), std::string::npos) << e;
  // A --set of a config key applies to every variant...
  Plan width = variants({{"model.width", "7"}});
  EXPECT_EQ(width.runs[0].config["model"]["width"], 7);
  EXPECT_EQ(width.runs[1].config["model"]["width"], 7);
  // ...and one that a variant also sets would be lost on that variant: refused, naming both.
  const std::string both = error_of([] { variants({{"train.epochs", "7"}}); });
  EXPECT_NE(both.find("--set train.epochs=7"), std::string::npos) << both;
  EXPECT_NE(both.find("strategy=dmbn"), std::string::npos) << both;
  // Narrowed to a variant that does not set it, the --set is fine.
  Plan slow = variants({{"strategy", "slow"}, {"train.epochs", "7"}});
  EXPECT_EQ(slow.runs[0].config["train"]["epochs"], 7);
}

TEST(SpecVariants, SmokeGridReplacesAnAxisAndRefusesOthers) {
  Plan smoke = variants({}, true);
  ASSERT_EQ(smoke.runs.size(), 2u);
  EXPECT_EQ(smoke.runs[0].name, "dataset=synthetic strategy=only seed=0");
  EXPECT_EQ(smoke.runs[0].config["model"]["norm"], "ln");
  // A quoted dotted key is a config axis in [smoke.grid] too.
  std::string text = kVariants;
  text += "grid.\"model.width\" = [4]\n";
  std::string e = error_of([&] { variants({}, false, text); });
  EXPECT_NE(e.find("[smoke.grid] key 'model.width'"), std::string::npos) << e;
  EXPECT_NE(e.find("not an axis of [grid]"), std::string::npos) << e;
  text = kVariants;
  text += "grid.regime = [{ name = \"full\", train.full_batch = true }]\n";
  e = error_of([&] { variants({}, false, text); });
  EXPECT_NE(e.find("'regime'"), std::string::npos) << e;
  text = kVariants;
  text += "grid.\"data.dataset\" = [\"synthetic\"]\n";
  EXPECT_EQ(variants({}, true, text).runs.size(), 2u);
}

TEST(SpecVariants, BadVariantsAreRefusedNamingTheAxis) {
  std::string e = error_of([] {
    variants({}, false, with_strategies("[{ name = \"a\", train.epochs = 1 }, { name = \"a\" }]"));
  });
  EXPECT_NE(e.find("'strategy'"), std::string::npos) << e;
  EXPECT_NE(e.find("two variants are named 'a'"), std::string::npos) << e;
  e = error_of([] { variants({}, false, with_strategies("[\"slow\", \"fast\"]")); });
  EXPECT_NE(e.find("'strategy'"), std::string::npos) << e;
  EXPECT_NE(e.find("name"), std::string::npos) << e;
  e = error_of([] { variants({}, false, with_strategies("[{ model.norm = \"ln\" }]")); });
  EXPECT_NE(e.find("'strategy'"), std::string::npos) << e;
  e = error_of([] { variants({}, false, with_strategies("[]")); });
  EXPECT_NE(e.find("non-empty"), std::string::npos) << e;
  e = error_of([] { variants({}, false, with_strategies("\"slow\"")); });
  EXPECT_NE(e.find("'strategy'"), std::string::npos) << e;
  // A variant's settings are config keys like any other.
  e = error_of(
      [] { variants({}, false, with_strategies("[{ name = \"x\", model.nrom = \"ln\" }]")); });
  EXPECT_NE(e.find("model.nrom"), std::string::npos) << e;
  EXPECT_NE(e.find("strategy=x"), std::string::npos) << e;
}

}  // namespace
}  // namespace normlab::study
