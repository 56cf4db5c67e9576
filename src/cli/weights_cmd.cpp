// `normlab weights inspect FILE` and `normlab weights convert IN OUT.safetensors`: look at and
// convert pretrained weight files (.pth from torch.save(state_dict), or safetensors).
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "io/state_dict.h"

namespace normlab::cli {
namespace {

std::string shape_text(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

int weights_inspect(const std::string& path) {
  const io::StateDict sd = io::load_state_dict(path);
  size_t width = 4;
  for (const auto& [name, t] : sd.items) width = std::max(width, name.size());
  int64_t params = 0;
  int64_t bytes = 0;
  std::printf("%-*s  %-5s  %s\n", static_cast<int>(width), "name", "dtype", "shape");
  for (const auto& [name, t] : sd.items) {
    std::printf("%-*s  %-5s  %s\n", static_cast<int>(width), name.c_str(),
                io::safetensors_dtype(t.scalar_type()).c_str(), shape_text(t).c_str());
    params += t.numel();
    bytes += static_cast<int64_t>(t.nbytes());
  }
  std::printf("%zu tensors, %lld parameters, %.2f MB\n", sd.items.size(),
              static_cast<long long>(params), static_cast<double>(bytes) / 1e6);
  for (const auto& [k, v] : sd.metadata) std::printf("metadata: %s = %s\n", k.c_str(), v.c_str());
  return 0;
}

int weights_convert(const std::string& in, const std::string& out) {
  const std::string ext = ".safetensors";
  if (out.size() < ext.size() || out.compare(out.size() - ext.size(), ext.size(), ext) != 0) {
    throw Error(out, "output must be a .safetensors file",
                "e.g. normlab weights convert " + in + " model.safetensors");
  }
  const io::StateDict sd = io::load_state_dict(in);
  io::save_safetensors(out, sd);
  int64_t params = 0;
  for (const auto& [name, t] : sd.items) params += t.numel();
  std::printf("normlab: wrote %zu tensors (%lld parameters) to %s\n", sd.items.size(),
              static_cast<long long>(params), out.c_str());
  return 0;
}

}  // namespace

void add_weights_commands(CLI::App& app, std::vector<Command>& out) {
  auto* weights = app.add_subcommand("weights", "Inspect and convert pretrained weight files");
  weights->require_subcommand(1);

  auto inspect_file = std::make_shared<std::string>();
  auto* inspect = weights->add_subcommand(
      "inspect",
      "List the tensors (name, dtype, shape) and metadata of a .pth or safetensors file");
  inspect->add_option("file", *inspect_file, "Weights file (.pth, .safetensors)")
      ->required()
      ->check(CLI::ExistingFile);
  out.push_back({inspect, [inspect_file] { return weights_inspect(*inspect_file); }});

  auto convert_in = std::make_shared<std::string>();
  auto convert_out = std::make_shared<std::string>();
  auto* convert =
      weights->add_subcommand("convert", "Convert a .pth state dict to a safetensors file");
  convert->add_option("in", *convert_in, "Input weights file (.pth or .safetensors)")
      ->required()
      ->check(CLI::ExistingFile);
  convert->add_option("out", *convert_out, "Output file (.safetensors)")->required();
  out.push_back(
      {convert, [convert_in, convert_out] { return weights_convert(*convert_in, *convert_out); }});
}

}  // namespace normlab::cli
