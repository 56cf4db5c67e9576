// `normlab study new NAME --from ID` and `normlab study validate SPEC`: start a study from a
// shipped template, and check one (keys, data, weights, plan, time) without training.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/files.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "study/run_interpolation.h"
#include "study/spec.h"
#include "study/templates.h"
#include "study/validate.h"

namespace normlab::cli {
namespace {

struct NewArgs {
  std::string name;
  std::string from;
  bool list = false;
};

int study_new(const NewArgs& a) {
  if (a.list || a.name.empty()) {
    for (const auto& [id, file] : study::list_templates()) {
      std::printf("%-20s %s\n", id.c_str(), file.c_str());
    }
    return 0;
  }
  const std::string path = study::write_new_study(a.name, a.from);
  std::printf("normlab: wrote %s from the template '%s'\n", path.c_str(), a.from.c_str());
  std::printf("next:    normlab study validate %s\n", path.c_str());
  return 0;
}

struct ValidateArgs {
  std::string spec;
  std::vector<std::string> sets;
  bool smoke = false;
  bool measure = true;
  int threads = 0;
};

int study_validate(const ValidateArgs& a) {
  const int threads = apply_threads(a.threads);
  study::Spec spec = study::load_spec(a.spec);
  study::ExpandOptions eo;
  eo.sets = parse_sets(a.sets);
  eo.smoke = a.smoke;
  const study::Plan plan = study::expand(spec, eo);
  const study::Validation v = study::validate_plan(plan, a.spec, a.measure);
  size_t runs = 0;
  for (const auto& g : v.groups) runs += g.runs.size();
  std::printf("normlab: %s is valid: study '%s', %zu run(s) in %zu group(s)\n", a.spec.c_str(),
              v.study.c_str(), runs, v.groups.size());
  for (size_t i = 0; i < v.groups.size(); ++i) {
    const auto& g = v.groups[i];
    std::printf("\ngroup %zu: %zu run(s); ", i + 1, g.runs.size());
    if (g.cut == 0) {
      std::printf("every stage trains");
    } else {
      std::printf("frozen prefix = stages 0-%lld of %lld, %s", static_cast<long long>(g.cut - 1),
                  static_cast<long long>(g.stages),
                  g.cached ? "read from the feature cache"
                           : ("run every batch (" + g.uncached_reason + ")").c_str());
    }
    std::printf(
        "\n  %lld train / %lld val / %lld test images; %lld epoch(s) x %lld step(s) of %lld\n",
        static_cast<long long>(g.train_images), static_cast<long long>(g.val_images),
        static_cast<long long>(g.test_images), static_cast<long long>(g.epochs),
        static_cast<long long>(g.steps_per_epoch), static_cast<long long>(g.batch));
    for (const auto& r : g.runs) std::printf("  - %s\n", r.c_str());
    if (a.measure) {
      std::printf(
          "  measured: prefix %.2f ms/image, one run's step %.1f ms, tail eval %.3f "
          "ms/image -> about %s\n",
          g.prefix_seconds_per_image * 1e3, g.tail_step_seconds * 1e3,
          g.tail_eval_seconds_per_image * 1e3, Progress::format_duration(g.seconds).c_str());
    }
  }
  for (const auto& note : v.notes) std::printf("\nnote: %s\n", note.c_str());
  if (a.measure) {
    std::printf(
        "\nestimated wall time: about %s with %d thread(s) (prefix and tail measured "
        "here; data loading, probes and a cache that already exists are not counted)\n",
        Progress::format_duration(v.seconds).c_str(), threads);
  }
  return 0;
}

struct InterpolateArgs {
  study::RunInterpolationOptions o;
  std::vector<double> range{-0.5, 1.5};
  std::string json;
  int threads = 0;
};

int study_interpolate(InterpolateArgs& a) {
  apply_threads(a.threads);
  a.o.lo = a.range.at(0);
  a.o.hi = a.range.at(1);
  const study::RunInterpolation r = study::interpolate_runs(a.o);
  std::printf("# loss from %s (t = 0) to %s (t = 1)\n", r.from.c_str(), r.to.c_str());
  std::printf("%10s %14s %14s\n", "t", "interpolated", "a_stats");
  for (size_t j = 0; j < r.interpolated.x.size(); ++j) {
    std::printf("%10.4f %14.6f %14.6f\n", r.interpolated.x[j], r.interpolated.z[0][j],
                r.a_stats.z[0][j]);
  }
  if (!a.json.empty()) {
    nlohmann::json out = {{"from", r.from},
                          {"to", r.to},
                          {"t", r.interpolated.x},
                          {"interpolated", r.interpolated.z[0]},
                          {"a_stats", r.a_stats.z[0]}};
    write_file_atomic(a.json, out.dump(2) + "\n");
  }
  return 0;
}

}  // namespace

void add_study_tools(CLI::App& study, std::vector<Command>& out) {
  auto na = std::make_shared<NewArgs>();
  auto* create = study.add_subcommand(
      "new", "Write NAME.toml from a shipped study template, ready to edit (--list: templates)");
  create->add_option("name", na->name, "Name of the new study (NAME.toml is written)");
  create->add_option("--from", na->from, "Template: quickstart, s0 ... s4, or a study file's stem")
      ->default_val("quickstart");
  create->add_flag("--list", na->list, "List the templates and their files");
  out.push_back({create, [na] { return study_new(*na); }});

  auto va = std::make_shared<ValidateArgs>();
  auto* validate = study.add_subcommand(
      "validate",
      "Check a study file without training: keys, types, patterns, datasets, weights; print "
      "the planned runs and groups and an estimate of the wall time");
  validate->add_option("spec", va->spec, "Study file (TOML)")->required()->check(CLI::ExistingFile);
  validate->add_option("--set", va->sets, "Override a config key: KEY=VALUE (repeatable)");
  validate->add_flag("--smoke", va->smoke, "Validate the [smoke] variant");
  validate->add_flag("!--no-measure", va->measure, "Skip the timing measurement");
  validate->add_option("--threads", va->threads, "Intra-op threads (0 = all cores)");
  out.push_back({validate, [va] { return study_validate(*va); }});

  auto ia = std::make_shared<InterpolateArgs>();
  auto* interp = study.add_subcommand(
      "interpolate",
      "Loss along the line between the final weights of two runs of a study (with the BN "
      "statistics interpolated, and with the first run's)");
  interp->add_option("dir", ia->o.study_dir, "Study directory (holding study.db)")->required();
  interp->add_option("from", ia->o.from, "Run at t = 0 (its name or a unique part of it)")
      ->required();
  interp->add_option("to", ia->o.to, "Run at t = 1")->required();
  interp->add_option("--points", ia->o.points, "Points along the line")->default_val(25);
  interp->add_option("--range", ia->range, "t from LO to HI")->expected(2);
  interp->add_option("--split", ia->o.split, "val, train or test")->default_val("val");
  interp->add_option("--images", ia->o.images, "First images of the split (0 = all)")
      ->default_val(512);
  interp->add_option("--json", ia->json, "Also write the curves to this JSON file");
  interp->add_option("--threads", ia->threads, "Intra-op threads (0 = all cores)");
  out.push_back({interp, [ia] { return study_interpolate(*ia); }});
}

}  // namespace normlab::cli
