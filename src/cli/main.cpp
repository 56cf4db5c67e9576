// normlab command line. Each subcommand parses flags into an options struct and calls one
// library function; every exception ends here as one message and a non-zero exit.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/version.h"
#include "report/report.h"
#include "study/runner.h"
#include "study/spec.h"

namespace normlab::cli {

std::vector<std::pair<std::string, std::string>> parse_sets(const std::vector<std::string>& sets) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& s : sets) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error("--set '" + s + "'", "expected KEY=VALUE", "e.g. --set train.epochs=5");
    }
    out.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  return out;
}

namespace {

using normlab::Error;

std::string default_out_dir(const std::string& spec_path, const std::string& study_name) {
  (void)spec_path;
  return "runs/" + study_name;
}

struct StudyRunArgs {
  std::string spec;
  std::vector<std::string> sets;
  std::string out;
  bool smoke = false;
  int threads = 0;
  bool report = true;
  bool quiet = false;
};

int study_run(const StudyRunArgs& a) {
  normlab::study::Spec spec = normlab::study::load_spec(a.spec);
  normlab::study::ExpandOptions eo;
  eo.sets = parse_sets(a.sets);
  eo.smoke = a.smoke;
  normlab::study::Plan plan = normlab::study::expand(spec, eo);
  std::string out =
      a.out.empty() ? default_out_dir(a.spec, plan.study_name + (a.smoke ? "-smoke" : "")) : a.out;
  std::printf("normlab: study '%s': %zu runs%s -> %s\n", plan.study_name.c_str(), plan.runs.size(),
              plan.pretrains.empty()
                  ? ""
                  : (" + " + std::to_string(plan.pretrains.size()) + " pretraining").c_str(),
              out.c_str());
  for (const auto& [later, kept] : plan.same_runs) {
    std::printf("normlab: '%s' is the same run as '%s': it runs once\n", later.c_str(),
                kept.c_str());
  }
  std::fflush(stdout);
  normlab::study::RunnerOptions ro;
  ro.out_dir = out;
  ro.spec_text = spec.text;
  ro.threads = a.threads;
  ro.progress = !a.quiet;
  auto result = normlab::study::run_study(plan, ro);
  std::printf("normlab: %d runs trained, %d already complete, %d failed in %.1f s\n",
              result.completed, result.skipped, result.failed, result.wall_seconds);
  if (a.report) {
    normlab::report::ReportOptions rep;
    rep.store_path = out + "/study.db";
    rep.output_path = out + "/report.html";
    normlab::report::write_html_report(rep);
    std::printf("normlab: report written to %s\n",
                std::filesystem::absolute(rep.output_path).string().c_str());
  }
  for (const auto& f : result.failures) std::fprintf(stderr, "normlab: failed: %s\n", f.c_str());
  return result.failed > 0 ? 1 : 0;
}

// One line per value: `key = value  # source` (default, [run], [grid], --set, [smoke.run]).
void print_config(const nlohmann::json& config, const normlab::study::Provenance& sources) {
  for (const auto& [key, value] : normlab::study::config_leaves(config)) {
    auto it = sources.find(key);
    std::string line = key + " = " + value.dump();
    if (line.size() < 56) line.resize(56, ' ');
    std::cout << line << "  # " << (it == sources.end() ? "default" : it->second) << "\n";
  }
}

int config_show(const std::string& spec_path, const std::vector<std::string>& sets, bool smoke,
                bool json) {
  if (spec_path.empty()) {
    if (json) {
      std::cout << normlab::study::default_run_config().dump(2) << "\n";
    } else {
      print_config(normlab::study::default_run_config(), {});
    }
    return 0;
  }
  auto spec = normlab::study::load_spec(spec_path);
  normlab::study::ExpandOptions eo;
  eo.sets = parse_sets(sets);
  eo.smoke = smoke;
  auto plan = normlab::study::expand(spec, eo);
  std::vector<const normlab::study::RunPlan*> all;
  for (const auto& p : plan.pretrains) all.push_back(&p);
  for (const auto& r : plan.runs) all.push_back(&r);
  if (json) {
    nlohmann::json runs = nlohmann::json::array();
    for (const auto* r : all) {
      runs.push_back({{"name", r->name}, {"config", r->config}, {"sources", r->sources}});
    }
    std::cout << nlohmann::json{{"study", plan.study_name}, {"runs", runs}}.dump(2) << "\n";
    return 0;
  }
  std::cout << "# study '" << plan.study_name << "': " << all.size() << " run(s)\n";
  for (const auto& [later, kept] : plan.same_runs) {
    std::cout << "# '" << later << "' is the same run as '" << kept << "': it runs once\n";
  }
  for (const auto* r : all) {
    std::cout << "\n[" << r->name << "]\n";
    print_config(r->config, r->sources);
  }
  return 0;
}

}  // namespace

void add_study_commands(CLI::App& app, std::vector<Command>& out) {
  auto* study = app.add_subcommand("study", "Run studies");
  study->require_subcommand(1);
  auto run_args = std::make_shared<StudyRunArgs>();
  auto* run = study->add_subcommand("run", "Run (or resume) every run of a study file");
  run->add_option("spec", run_args->spec, "Study file (TOML)")
      ->required()
      ->check(CLI::ExistingFile);
  run->add_option("--set", run_args->sets, "Override a config key: KEY=VALUE (repeatable)");
  run->add_option("--out", run_args->out, "Study directory (default runs/<study name>)");
  run->add_flag("--smoke", run_args->smoke, "Run the study's tiny [smoke] variant");
  run->add_option("--threads", run_args->threads, "Intra-op threads (0 = all cores)");
  run->add_flag("!--no-report", run_args->report, "Do not write report.html at the end");
  run->add_flag("-q,--quiet", run_args->quiet, "No progress lines");
  out.push_back({run, [run_args] { return study_run(*run_args); }});
  add_study_tools(*study, out);

  auto report_dir = std::make_shared<std::string>();
  auto report_out = std::make_shared<std::string>();
  auto* report = app.add_subcommand("report", "Write a self-contained HTML report of a study");
  report->add_option("dir", *report_dir, "Study directory (holding study.db)")->required();
  report->add_option("-o,--output", *report_out, "Output file (default DIR/report.html)");
  out.push_back({report, [report_dir, report_out] {
                   normlab::report::ReportOptions rep;
                   rep.store_path = *report_dir + "/study.db";
                   rep.output_path =
                       report_out->empty() ? *report_dir + "/report.html" : *report_out;
                   normlab::report::write_html_report(rep);
                   std::printf("normlab: report written to %s\n",
                               std::filesystem::absolute(rep.output_path).string().c_str());
                   return 0;
                 }});

  auto show_spec = std::make_shared<std::string>();
  auto show_sets = std::make_shared<std::vector<std::string>>();
  auto show_smoke = std::make_shared<bool>(false);
  auto show_json = std::make_shared<bool>(false);
  auto* config = app.add_subcommand("config", "Inspect configuration");
  config->require_subcommand(1);
  auto* show = config->add_subcommand(
      "show",
      "Print the defaults, or every resolved run config of a study file with the source of "
      "each value");
  show->add_option("spec", *show_spec, "Study file (TOML)")->check(CLI::ExistingFile);
  show->add_option("--set", *show_sets, "Override a config key: KEY=VALUE (repeatable)");
  show->add_flag("--smoke", *show_smoke, "Resolve the [smoke] variant");
  show->add_flag("--json", *show_json, "JSON (configs and each value's source)");
  out.push_back({show, [show_spec, show_sets, show_smoke, show_json] {
                   return config_show(*show_spec, *show_sets, *show_smoke, *show_json);
                 }});
}

}  // namespace normlab::cli

int main(int argc, char** argv) {
  normlab::sleep_idle_openmp_threads(argv);
  CLI::App app{"normlab: normalization and gradient-dynamics studies in transfer learning"};
  app.set_version_flag("--version", normlab::version_line());
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging");
  std::vector<normlab::cli::Command> commands;
  normlab::cli::add_study_commands(app, commands);
  normlab::cli::add_weights_commands(app, commands);
  normlab::cli::add_data_commands(app, commands);
  normlab::cli::add_predict_command(app, commands);
  normlab::cli::add_probes_commands(app, commands);
  normlab::cli::add_doctor_command(app, commands);
  normlab::cli::add_completion_command(app, commands);

  CLI11_PARSE(app, argc, argv);
  normlab::keep_freed_memory();
  if (verbose) normlab::log::set_level(normlab::log::Level::kDebug);

  try {
    for (const auto& c : commands) {
      if (c.app->parsed()) return c.run();
    }
  } catch (const normlab::Error& e) {
    std::fprintf(stderr, "normlab: error: %s\n", e.what());
    return 2;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "normlab: error: %s\n", e.what_without_backtrace());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "normlab: error: %s\n", e.what());
    return 2;
  }
  return 0;
}
