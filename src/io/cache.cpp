#include "io/cache.h"

#include <cstdlib>
#include <filesystem>

#include "core/error.h"

namespace normlab::io {

std::string cache_dir() {
  namespace fs = std::filesystem;
  if (const char* own = std::getenv("NORMLAB_CACHE"); own != nullptr && own[0] != '\0') {
    return own;
  }
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && xdg[0] == '/') {
    return (fs::path(xdg) / "normlab").string();
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] != '\0') {
    return (fs::path(home) / ".cache" / "normlab").string();
  }
  throw Error("cache directory", "neither NORMLAB_CACHE, XDG_CACHE_HOME nor HOME is set",
              "set NORMLAB_CACHE to a writable directory");
}

}  // namespace normlab::io
