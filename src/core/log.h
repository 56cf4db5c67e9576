// Minimal leveled logging to stderr. The level is set once by the CLI (--quiet/--verbose).
#pragma once

#include <sstream>
#include <string>

namespace normlab::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void set_level(Level level);
Level level();
void write(Level level, const std::string& message);

template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <typename... Args>
void debug(const Args&... args) {
  if (level() <= Level::kDebug) write(Level::kDebug, cat(args...));
}
template <typename... Args>
void info(const Args&... args) {
  if (level() <= Level::kInfo) write(Level::kInfo, cat(args...));
}
template <typename... Args>
void warn(const Args&... args) {
  if (level() <= Level::kWarn) write(Level::kWarn, cat(args...));
}
template <typename... Args>
void error(const Args&... args) {
  if (level() <= Level::kError) write(Level::kError, cat(args...));
}

}  // namespace normlab::log
