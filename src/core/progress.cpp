#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace normlab {

Progress::Progress(ProgressOptions options)
    : options_(std::move(options)),
      tty_(isatty(fileno(options_.stream)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {
  if (const char* env = std::getenv("NORMLAB_PROGRESS_SECONDS")) {
    char* end = nullptr;
    const double v = std::strtod(env, &end);
    if (end != env && *end == '\0' && v >= 0) options_.plain_interval_s = v;
  }
}

std::string Progress::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>((s % 3600) / 60));
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  }
  return buf;
}

int64_t Progress::remaining_steps(int64_t epoch, int64_t step) const {
  const int64_t total = std::max<int64_t>(options_.epochs, 1) * options_.steps_per_epoch;
  return std::max<int64_t>(0, total - (epoch * options_.steps_per_epoch + step));
}

void Progress::step(int64_t epoch, int64_t step, int64_t images) {
  images_ += images;
  ++steps_done_;
  if (!options_.enabled) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_print_).count();
  double interval = tty_ ? 0.2 : options_.plain_interval_s;
  if (since < interval) return;
  last_print_ = now;
  print(epoch, step, false, "");
}

void Progress::epoch_done(int64_t epoch, const std::string& summary) {
  if (!options_.enabled) return;
  last_print_ = std::chrono::steady_clock::now();
  print(epoch, options_.steps_per_epoch, true, summary);
}

void Progress::finish(const std::string& summary) {
  if (!options_.enabled) return;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (!printed_ && elapsed < options_.quiet_below_s) return;
  print(0, steps_done_, true, summary);
}

void Progress::print(int64_t epoch, int64_t step, bool final_line, const std::string& summary) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = elapsed > 0 ? static_cast<double>(images_) / elapsed : 0.0;
  double eta = steps_done_ > 0 ? elapsed / static_cast<double>(steps_done_) *
                                     static_cast<double>(remaining_steps(epoch, step))
                               : NAN;
  // A finished phase reports its duration instead of an ETA of zero.
  const std::string when = options_.epochs == 0 && final_line ? "took " + format_duration(elapsed)
                                                              : "ETA " + format_duration(eta);
  char line[512];
  if (options_.epochs == 0) {
    std::snprintf(line, sizeof line, "%s: %s %lld/%lld  %.0f img/s  %s%s%s", options_.label.c_str(),
                  options_.unit.c_str(), static_cast<long long>(step),
                  static_cast<long long>(options_.steps_per_epoch), rate, when.c_str(),
                  summary.empty() ? "" : "  ", summary.c_str());
  } else {
    std::snprintf(line, sizeof line, "%s epoch %lld/%lld step %lld/%lld  %.0f img/s  %s%s%s",
                  options_.label.c_str(), static_cast<long long>(epoch + 1),
                  static_cast<long long>(options_.epochs), static_cast<long long>(step),
                  static_cast<long long>(options_.steps_per_epoch), rate, when.c_str(),
                  summary.empty() ? "" : "  ", summary.c_str());
  }
  printed_ = true;
  if (tty_) {
    std::fprintf(options_.stream, "\r\033[K%s%s", line, final_line ? "\n" : "");
  } else {
    std::fprintf(options_.stream, "%s\n", line);
  }
  std::fflush(options_.stream);
}

}  // namespace normlab
