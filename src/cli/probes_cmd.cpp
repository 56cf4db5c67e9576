// `normlab probes list`: every registered probe with its options and their defaults, as a
// study file turns them on (`probe.<name> = { enabled = true, ... }`).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "probe/registry.h"

namespace normlab::cli {
namespace {

int probes_list(bool json) {
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& p : probe::probes()) {
      out.push_back(
          {{"name", p.name}, {"summary", p.summary}, {"options", p.defaults}, {"help", p.help}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  for (const auto& p : probe::probes()) {
    std::printf("%s  %s\n", p.name.c_str(), p.summary.c_str());
    for (const auto& [key, value] : p.defaults.items()) {
      auto help = p.help.find(key);
      std::printf("    probe.%s.%s = %s%s%s\n", p.name.c_str(), key.c_str(), value.dump().c_str(),
                  help == p.help.end() ? "" : "    # ",
                  help == p.help.end() ? "" : help->second.c_str());
    }
  }
  return 0;
}

}  // namespace

void add_probes_commands(CLI::App& app, std::vector<Command>& out) {
  auto* probes = app.add_subcommand("probes", "What a study can measure during training");
  probes->require_subcommand(1);
  auto* list = probes->add_subcommand("list", "Every probe with its options and defaults");
  auto json = std::make_shared<bool>(false);
  list->add_flag("--json", *json, "Machine-readable output");
  out.push_back({list, [json] { return probes_list(*json); }});
}

}  // namespace normlab::cli
