// Grids beyond the cartesian product: zipped axes, include points, named sub-grids, and the
// --set and [smoke.grid] rules over them (study/grid.h).
#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "error_of.h"
#include "study/spec.h"

namespace normlab::study {
namespace {

using normlab::testing::error_of;

// S1's shape: heads x experiments, plus two appendix sweeps over one head each.
const char* kS1Shape = R"toml(
[study]
name = "s1"
seeds = [0, 1]

[run]
data.dataset = "synthetic"
model.backbone = "mlp"
model.width = 8

[grid]
"model.head.norm" = ["bn", "none"]
experiment = [
  { name = "E1", train.optimizer.lr = 1e-3 },
  { name = "E3", train.optimizer.lr = 1e-2 },
]

[[grid.include]]
name = "wide"
model.width = 16

[grid.lr_sweep]
"model.head.norm" = ["none"]
"train.optimizer.lr" = [1e-4, 1e-2]

[grid.batch_sweep]
"model.head.norm" = ["bn"]
[[grid.batch_sweep.zip]]
"train.batch_size" = [16, 256]
"train.optimizer.lr" = [1e-4, 4e-3]

[smoke]
seeds = [0]
grid.lr_sweep."train.optimizer.lr" = [1e-2]
)toml";

Plan plan_of(const std::string& text, std::vector<std::pair<std::string, std::string>> sets = {},
             bool smoke = false) {
  ExpandOptions o;
  o.sets = std::move(sets);
  o.smoke = smoke;
  return expand(parse_spec(text, "s1.toml"), o);
}

const RunPlan& run_named(const Plan& plan, const std::string& name) {
  for (const auto& r : plan.runs) {
    if (r.name == name) return r;
  }
  std::string names;
  for (const auto& r : plan.runs) names += "\n  " + r.name;
  throw std::runtime_error("no run '" + name + "' among:" + names);
}

TEST(Grid, SubGridsIncludeAndZipAddPointsBesideTheProduct) {
  const Plan plan = plan_of(kS1Shape);
  // Per seed: 2 x 2 product + 1 include + 2 lr sweep + 2 batch sweep = 9, but the lr sweep's
  // (none, 1e-2) is the main grid's (none, E3): it runs once.
  ASSERT_EQ(plan.runs.size(), 16u);
  ASSERT_EQ(plan.same_runs.size(), 2u);
  EXPECT_EQ(plan.same_runs[0].first, "lr_sweep: norm=none lr=0.01 seed=0");
  EXPECT_EQ(plan.same_runs[0].second, "experiment=E3 norm=none seed=0");

  const Json& e3 = run_named(plan, "experiment=E3 norm=bn seed=1").config;
  EXPECT_DOUBLE_EQ(e3["train"]["optimizer"]["lr"].get<double>(), 1e-2);
  EXPECT_EQ(e3["model"]["head"]["norm"], "bn");

  // An include point is the base run with its settings, not crossed with any axis.
  const RunPlan& wide = run_named(plan, "wide seed=0");
  EXPECT_EQ(wide.group, "wide");
  EXPECT_EQ(wide.config["model"]["width"], 16);
  EXPECT_EQ(wide.config["model"]["head"]["norm"], default_run_config()["model"]["head"]["norm"]);
  EXPECT_EQ(wide.sources.at("model.width"), "[grid] include wide");

  // A sub-grid's points are its own product over the base run, labelled with its name.
  const RunPlan& low = run_named(plan, "lr_sweep: norm=none lr=0.0001 seed=0");
  EXPECT_EQ(low.group, "lr_sweep: norm=none lr=0.0001");
  EXPECT_DOUBLE_EQ(low.config["train"]["optimizer"]["lr"].get<double>(), 1e-4);
  EXPECT_EQ(low.config["model"]["width"], 8);
  EXPECT_EQ(low.sources.at("train.optimizer.lr"), "[grid.lr_sweep]");

  // Zipped axes vary together: two points, not four.
  std::set<std::pair<int64_t, double>> zipped;
  for (const auto& r : plan.runs) {
    if (r.group.rfind("batch_sweep:", 0) != 0) continue;
    zipped.emplace(r.config["train"]["batch_size"].get<int64_t>(),
                   r.config["train"]["optimizer"]["lr"].get<double>());
    EXPECT_EQ(r.config["model"]["head"]["norm"], "bn") << r.name;
  }
  EXPECT_EQ(zipped, (std::set<std::pair<int64_t, double>>{{16, 1e-4}, {256, 4e-3}}));
  EXPECT_NO_THROW(run_named(plan, "batch_sweep: norm=bn batch_size=16 lr=0.0001 seed=0"));
}

TEST(Grid, SetNarrowsAxesEverywhereAndRefusesKeysThatPointsSet) {
  // --set on an axis's key narrows that axis in every grid that has it.
  const Plan bn = plan_of(kS1Shape, {{"model.head.norm", "\"bn\""}, {"study.seeds", "[0]"}});
  for (const auto& r : bn.runs) EXPECT_EQ(r.config["model"]["head"]["norm"], "bn") << r.name;
  EXPECT_EQ(bn.runs.size(), 2u + 1u + 1u + 2u);  // E1, E3; wide; lr sweep narrowed; zip
  // A --set that a variant, a zip or an include point also sets is refused, naming both.
  std::string e = error_of([] { plan_of(kS1Shape, {{"train.optimizer.lr", "0.5"}}); });
  EXPECT_NE(e.find("--set train.optimizer.lr=0.5"), std::string::npos) << e;
  EXPECT_NE(e.find("experiment=E1"), std::string::npos) << e;
  e = error_of([] { plan_of(kS1Shape, {{"train.batch_size", "8"}}); });
  EXPECT_NE(e.find("--set train.batch_size=8"), std::string::npos) << e;
  EXPECT_NE(e.find("[grid.batch_sweep] zip"), std::string::npos) << e;
  e = error_of([] { plan_of(kS1Shape, {{"model.width", "4"}}); });
  EXPECT_NE(e.find("--set model.width=4"), std::string::npos) << e;
  EXPECT_NE(e.find("include"), std::string::npos) << e;
  // A key nothing in the grids sets applies to every run.
  const Plan epochs = plan_of(kS1Shape, {{"train.epochs", "2"}});
  for (const auto& r : epochs.runs) EXPECT_EQ(r.config["train"]["epochs"], 2) << r.name;
}

TEST(Grid, SmokeReplacesASubGridsAxis) {
  const Plan smoke = plan_of(kS1Shape, {}, true);
  size_t sweep = 0;
  for (const auto& r : smoke.runs) {
    if (r.group.rfind("lr_sweep:", 0) == 0) ++sweep;
  }
  EXPECT_EQ(sweep, 0u);  // its only point, (none, 1e-2), is E3's run
  ASSERT_EQ(smoke.same_runs.size(), 1u);
  std::string text = kS1Shape;
  text += "grid.no_such.\"train.optimizer.lr\" = [1e-3]\n";
  std::string e = error_of([&] { plan_of(text); });
  EXPECT_NE(e.find("[smoke.grid.no_such]"), std::string::npos) << e;
  text = kS1Shape;
  text += "grid.lr_sweep.\"train.epochs\" = [1]\n";
  e = error_of([&] { plan_of(text); });
  EXPECT_NE(e.find("key 'train.epochs'"), std::string::npos) << e;
  EXPECT_NE(e.find("not an axis of [grid.lr_sweep]"), std::string::npos) << e;
}

TEST(Grid, BadGridsAreRefusedNamingTheGridAndKey) {
  auto with_grid = [](const std::string& grid) {
    return std::string("[run]\ndata.dataset = \"synthetic\"\n") + grid;
  };
  std::string e = error_of([&] {
    plan_of(with_grid(
        "[[grid.zip]]\n\"train.optimizer.lr\" = [1e-3, 1e-2]\n\"train.batch_size\" = [64]\n"));
  });
  EXPECT_NE(e.find("[grid] zip key 'train.optimizer.lr'"), std::string::npos) << e;
  EXPECT_NE(e.find("has 2 values but 'train.batch_size' has 1"), std::string::npos) << e;
  e = error_of([&] {
    plan_of(
        with_grid("[grid]\n\"train.optimizer.lr\" = [1e-3]\n[[grid.zip]]\n\"train.optimizer.lr\" = "
                  "[1e-2]\n"));
  });
  EXPECT_NE(e.find("key 'train.optimizer.lr' is set by both axis 'train.optimizer.lr' and zip"),
            std::string::npos)
      << e;
  e = error_of([&] {
    plan_of(
        with_grid("[grid]\n\"train.epochs\" = [1, 2]\n"
                  "s = [{ name = \"a\", train.epochs = 3 }]\n"));
  });
  EXPECT_NE(e.find("variant s=a"), std::string::npos) << e;
  e = error_of([&] { plan_of(with_grid("[grid.empty]\n")); });
  EXPECT_NE(e.find("[grid.empty]"), std::string::npos) << e;
  EXPECT_NE(e.find("no axis and no include"), std::string::npos) << e;
  e = error_of([&] { plan_of(with_grid("[[grid.include]]\nname = \"x\"\nmodel.nrom = 1\n")); });
  EXPECT_NE(e.find("include x"), std::string::npos) << e;
  EXPECT_NE(e.find("model.nrom"), std::string::npos) << e;
  e = error_of([&] { plan_of(with_grid("[grid.sub.inner]\n\"train.optimizer.lr\" = [1]\n")); });
  EXPECT_NE(e.find("sub-grid cannot hold another"), std::string::npos) << e;
  // Only include points: they are the runs, the base run is not added.
  const Plan only = plan_of(with_grid("[[grid.include]]\ntrain.epochs = 2\n"));
  ASSERT_EQ(only.runs.size(), 1u);
  EXPECT_EQ(only.runs[0].name, "epochs=2 seed=0");
}

}  // namespace
}  // namespace normlab::study
