// Subcommand registration: each file of cli/ adds its subcommands to the app and the
// function to run when one of them was parsed. main() tries them in order.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace normlab::cli {

struct Command {
  CLI::App* app;             // the (sub)subcommand
  std::function<int()> run;  // called when `app` was parsed; returns the exit code
};

// --set KEY=VALUE arguments as pairs; throws Error for one without '='.
std::vector<std::pair<std::string, std::string>> parse_sets(const std::vector<std::string>& sets);

void add_study_commands(CLI::App& app, std::vector<Command>& out);    // study run, report, config
void add_study_tools(CLI::App& study, std::vector<Command>& out);     // study new, validate
void add_weights_commands(CLI::App& app, std::vector<Command>& out);  // weights inspect|convert
void add_data_commands(CLI::App& app, std::vector<Command>& out);     // data fetch|list
void add_predict_command(CLI::App& app, std::vector<Command>& out);   // predict
void add_probes_commands(CLI::App& app, std::vector<Command>& out);   // probes list
void add_doctor_command(CLI::App& app, std::vector<Command>& out);    // doctor
// completion bash; register last: the script lists every command registered before it.
void add_completion_command(CLI::App& app, std::vector<Command>& out);
std::string bash_completion(const CLI::App& app);

}  // namespace normlab::cli
