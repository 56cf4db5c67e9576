#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace normlab::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::mutex g_mutex;

const char* tag(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warning";
    case Level::kError:
      return "error";
    case Level::kOff:
      break;
  }
  return "";
}

}  // namespace

void set_level(Level level) { g_level = level; }
Level level() { return g_level; }

void write(Level level, const std::string& message) {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "normlab %s: %s\n", tag(level), message.c_str());
  std::fflush(stderr);
}

}  // namespace normlab::log
