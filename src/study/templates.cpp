#include "study/templates.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <regex>

#include "core/error.h"
#include "core/files.h"

namespace normlab::study {
namespace {

namespace fs = std::filesystem;

// STUDIES.md's ids and the file each maps to.
const std::vector<std::pair<std::string, std::string>>& short_ids() {
  static const std::vector<std::pair<std::string, std::string>> ids = {
      {"quickstart", "quickstart"},  {"q", "quickstart"},      {"s0", "s0_norm_heads"},
      {"s1", "s1_heads_clip_lr"},    {"s2", "s2_bn_transfer"}, {"s3", "s3_two_stage"},
      {"s4", "s4_estimation_shift"},
  };
  return ids;
}

std::string file_for_stem(const std::string& stem) {
  std::error_code ec;
  for (const auto& dir : template_dirs()) {
    const fs::path p = fs::path(dir) / (stem + ".toml");
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return "";
}

}  // namespace

std::vector<std::string> template_dirs() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("NORMLAB_STUDIES"); env != nullptr && *env != '\0') {
    out.push_back(env);
  }
  // An installed normlab's own templates before the source tree it was built from.
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back(
        (exe.parent_path() / ".." / "share" / "normlab" / "studies").lexically_normal().string());
  }
#ifdef NORMLAB_STUDIES_DIR
  out.push_back(NORMLAB_STUDIES_DIR);
#endif
  return out;
}

std::vector<std::pair<std::string, std::string>> list_templates() {
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<std::string> listed_stems;
  for (const auto& [id, stem] : short_ids()) {
    if (id == "q") continue;  // an alias of quickstart
    const std::string file = file_for_stem(stem);
    if (file.empty()) continue;
    out.emplace_back(id, file);
    listed_stems.push_back(stem);
  }
  std::vector<std::string> stems;
  std::error_code ec;
  for (const auto& dir : template_dirs()) {
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.path().extension() != ".toml") continue;
      const std::string stem = entry.path().stem().string();
      if (std::find(listed_stems.begin(), listed_stems.end(), stem) != listed_stems.end()) continue;
      if (std::find(stems.begin(), stems.end(), stem) != stems.end()) continue;
      stems.push_back(stem);
    }
  }
  std::sort(stems.begin(), stems.end());
  for (const auto& stem : stems) out.emplace_back(stem, file_for_stem(stem));
  return out;
}

std::string find_template(const std::string& id) {
  std::string stem = id;
  for (const auto& [short_id, file_stem] : short_ids()) {
    if (short_id == id) stem = file_stem;
  }
  const std::string file = file_for_stem(stem);
  if (!file.empty()) return file;
  std::string known;
  for (const auto& [tid, path] : list_templates()) known += (known.empty() ? "" : ", ") + tid;
  std::string dirs;
  for (const auto& d : template_dirs()) dirs += "\n    " + d;
  throw Error("template '" + id + "'",
              stem != id ? "its file " + stem + ".toml is not shipped with this normlab"
                         : "not found in:" + dirs,
              "available: " + known);
}

std::string new_study_text(const std::string& template_text, const std::string& template_file,
                           const std::string& name, const std::string& path) {
  // The first `name = "..."` after the [study] header names the study.
  static const std::regex study_name(
      R"((\[study\](?:\n(?!\[)[^\n]*)*?\n[ \t]*name[ \t]*=[ \t]*)\"[^\"]*\")");
  std::smatch m;
  require(std::regex_search(template_text, m, study_name), template_file,
          "has no name = \"...\" in its [study] table", "");
  std::string text = m.prefix().str() + m[1].str() + "\"" + name + "\"" + m.suffix().str();
  const std::string header = "# Study '" + name + "', from the template " +
                             fs::path(template_file).filename().string() +
                             " (normlab study new). Edit it, then:\n#   normlab study validate " +
                             path + "    # checks keys, data, weights; plans and times the runs\n" +
                             "#   normlab study run " + path + "\n#\n";
  return header + text;
}

std::string write_new_study(const std::string& name, const std::string& id) {
  require(!name.empty(), "study new", "needs a NAME", "e.g. normlab study new my_study --from s0");
  const std::string path = fs::path(name).extension() == ".toml" ? name : name + ".toml";
  const std::string stem = fs::path(path).stem().string();
  std::error_code ec;
  require(!fs::exists(path, ec), path, "already exists; not overwritten",
          "choose another NAME or remove the file");
  const std::string file = find_template(id);
  write_file_atomic(path, new_study_text(read_file_text(file), file, stem, path));
  return path;
}

}  // namespace normlab::study
