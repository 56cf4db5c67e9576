#include <gtest/gtest.h>

#include "core/error.h"
#include "study/config.h"
#include "study/plan_check.h"
#include "study/run_options.h"
#include "study/spec.h"

namespace normlab::study {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

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
  ASSERT_TRUE(plan.pretrain.has_value());
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
  EXPECT_EQ(plan.pretrain->config["data"]["classes"], Json::parse("[0,1]"));
}

TEST(Spec, SetNarrowsAxesAndSmokeApplies) {
  Spec spec = parse_spec(kSpec, "demo.toml");
  ExpandOptions o;
  o.sets = {{"model.head.norm", "ln"}, {"study.seeds", "[3]"}, {"pretrain.train.epochs", "2"}};
  Plan plan = expand(spec, o);
  ASSERT_EQ(plan.runs.size(), 2u);
  EXPECT_EQ(plan.runs[0].config["model"]["head"]["norm"], "ln");
  EXPECT_EQ(plan.runs[0].config["seed"], 3);
  EXPECT_EQ(plan.pretrain->config["train"]["epochs"], 2);

  ExpandOptions s;
  s.smoke = true;
  Plan smoke = expand(spec, s);
  ASSERT_EQ(smoke.runs.size(), 6u);
  EXPECT_EQ(smoke.runs[0].config["data"]["dataset"], "synthetic");
  EXPECT_EQ(smoke.runs[0].config["seed"], 7);
  EXPECT_EQ(smoke.pretrain->config["data"]["dataset"], "synthetic");
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
