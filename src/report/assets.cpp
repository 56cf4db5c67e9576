#include "report/assets.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"

namespace normlab::report {

std::vector<std::string> plotly_candidates() {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  if (const char* env = std::getenv("NORMLAB_ASSETS"); env != nullptr && *env != '\0') {
    out.push_back((fs::path(env) / "plotly.js-dist-min" / "plotly.min.js").string());
  }
  // An installed normlab's own copy before the source tree it was built from.
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back((exe.parent_path() / ".." / "share" / "normlab" / "plotly.min.js")
                      .lexically_normal()
                      .string());
  }
#ifdef NORMLAB_ASSET_DIR
  out.push_back((fs::path(NORMLAB_ASSET_DIR) / "plotly.js-dist-min" / "plotly.min.js").string());
#endif
  return out;
}

std::string read_first_asset(const std::vector<std::string>& candidates, const std::string& what) {
  std::error_code ec;
  for (const auto& path : candidates) {
    if (std::filesystem::is_regular_file(path, ec)) return read_file_text(path);
  }
  std::string tried;
  for (const auto& path : candidates) tried += "\n    " + path;
  throw Error(what, "not found; tried:" + (tried.empty() ? std::string(" (no candidates)") : tried),
              "run `npm ci` in the normlab source tree (it installs plotly.js-dist-min into "
              "node_modules), or set NORMLAB_ASSETS to a directory holding "
              "plotly.js-dist-min/plotly.min.js");
}

std::string load_plotly() {
  return escape_script_text(read_first_asset(plotly_candidates(), "plotly.min.js"));
}

std::string escape_script_text(std::string text) {
  static const std::string kTag = "script";
  for (size_t pos = text.find("</"); pos != std::string::npos; pos = text.find("</", pos + 2)) {
    bool is_script = text.size() >= pos + 2 + kTag.size();
    for (size_t i = 0; is_script && i < kTag.size(); ++i) {
      is_script = std::tolower(static_cast<unsigned char>(text[pos + 2 + i])) == kTag[i];
    }
    if (is_script) text.insert(pos + 1, "\\");
  }
  return text;
}

}  // namespace normlab::report
