#include "io/download.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/progress.h"

namespace normlab::io {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------------
// Progress of one transfer: bytes, MB/s and ETA. A terminal gets one line rewritten in place
// (5 times a second); logs and pipes get a plain line every 10 s and one at the end.
class TransferProgress {
 public:
  TransferProgress(std::string label, bool enabled)
      : label_(std::move(label)),
        enabled_(enabled),
        tty_(isatty(fileno(stderr)) != 0),
        start_(std::chrono::steady_clock::now()),
        last_print_(start_) {}

  // `done` and `total` count the whole file (a resumed download starts at `resumed`).
  void update(int64_t resumed, int64_t done, int64_t total, bool final_line) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    const double since = std::chrono::duration<double>(now - last_print_).count();
    if (!final_line && since < (tty_ ? 0.2 : 10.0)) return;
    last_print_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(done - resumed) / elapsed : 0.0;
    const double mb = 1024.0 * 1024.0;
    char line[512];
    if (total > 0) {
      const double eta = rate > 0 ? static_cast<double>(total - done) / rate : -1.0;
      std::snprintf(line, sizeof line, "%s  %.1f/%.1f MB (%.0f%%)  %.2f MB/s  ETA %s",
                    label_.c_str(), static_cast<double>(done) / mb, static_cast<double>(total) / mb,
                    100.0 * static_cast<double>(done) / static_cast<double>(total), rate / mb,
                    Progress::format_duration(eta).c_str());
    } else {
      std::snprintf(line, sizeof line, "%s  %.1f MB  %.2f MB/s", label_.c_str(),
                    static_cast<double>(done) / mb, rate / mb);
    }
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s%s", line, final_line ? "\n" : "");
    } else {
      std::fprintf(stderr, "%s\n", line);
    }
    std::fflush(stderr);
  }

 private:
  std::string label_;
  bool enabled_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
};

// ---------------------------------------------------------------------------------------------

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string manual_hint(const DownloadOptions& opts) {
  return "download it elsewhere with: curl -L -o '" + opts.dest_path + "' '" + opts.url +
         "' and copy it to " + opts.dest_path;
}

void ensure_curl_initialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Not thread-safe itself, hence call_once; never cleaned up (lives as long as the process).
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw Error("libcurl", "curl_global_init failed");
    }
  });
}

// State shared with libcurl's callbacks during one request.
struct Transfer {
  std::string part_path;
  int64_t resume_from = 0;  // bytes already in the .part when the request was sent
  CURL* curl = nullptr;
  std::FILE* file = nullptr;
  int64_t written = 0;      // bytes written by this request
  bool restarted = false;   // the server ignored the Range request (200): began at byte 0
  std::string write_error;  // set when the local file could not be written
  TransferProgress* progress = nullptr;
  int64_t total = -1;  // size of the whole file, when known
};

// Opens the .part once the response code is known: 206 appends, anything else (200) starts
// over, because the body is then the whole file from byte 0.
bool open_part(Transfer& t) {
  long code = 0;
  curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &code);
  const bool append = t.resume_from > 0 && code == 206;
  if (t.resume_from > 0 && !append) {
    t.restarted = true;
    log::info("download: server did not resume (HTTP ", code, "); restarting from byte 0");
  }
  t.file = std::fopen(t.part_path.c_str(), append ? "ab" : "wb");
  if (t.file == nullptr) {
    t.write_error = std::string("cannot open for writing: ") + std::strerror(errno);
    return false;
  }
  if (!append) t.resume_from = 0;
  return true;
}

size_t on_write(char* data, size_t size, size_t nmemb, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const size_t n = size * nmemb;
  if (t.file == nullptr && !open_part(t)) return 0;  // 0 aborts the transfer
  if (std::fwrite(data, 1, n, t.file) != n) {
    t.write_error = std::string("write failed: ") + std::strerror(errno);
    return 0;
  }
  t.written += static_cast<int64_t>(n);
  return n;
}

int on_progress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) {
  auto& t = *static_cast<Transfer*>(user);
  // Until the body starts, resume_from is still the requested offset; a 200 resets it to 0.
  const int64_t base = t.restarted ? 0 : t.resume_from;
  if (dltotal > 0) t.total = base + static_cast<int64_t>(dltotal);
  t.progress->update(base, base + static_cast<int64_t>(dlnow), t.total, false);
  return 0;
}

int64_t file_size_or_zero(const std::string& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(size);
}

// One HTTP request. Returns the response code; throws Error for transport failures.
long fetch_once(const DownloadOptions& opts, Transfer& t, bool use_range) {
  ensure_curl_initialized();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) throw Error("libcurl", "curl_easy_init failed");
  t.curl = curl;
  t.file = nullptr;
  t.written = 0;
  t.restarted = false;
  t.resume_from = use_range ? file_size_or_zero(t.part_path) : 0;
  char errbuf[CURL_ERROR_SIZE] = {0};
  const std::string range = std::to_string(t.resume_from) + "-";
  const long timeout = opts.timeout_s > 0 ? opts.timeout_s : 30;

  curl_easy_setopt(curl, CURLOPT_URL, opts.url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);  // 4xx/5xx: no body written, an error
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);     // safe in threaded programs
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "normlab/0.1 (libcurl)");
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, timeout);
  // Abort when fewer than 1 byte/s arrive for `timeout` seconds (a stalled connection).
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, timeout);
  // CURLOPT_RANGE rather than CURLOPT_RESUME_FROM_LARGE: the latter makes libcurl itself fail
  // on a 200 answer, whereas we want to restart from byte 0 then.
  if (t.resume_from > 0) curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);

  const CURLcode rc = curl_easy_perform(curl);
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  // An empty body never calls on_write; the .part must still reflect the response.
  if (rc == CURLE_OK && t.file == nullptr) open_part(t);
  curl_easy_cleanup(curl);
  t.curl = nullptr;
  bool closed_ok = true;
  if (t.file != nullptr) {
    closed_ok = std::fclose(t.file) == 0;
    t.file = nullptr;
  }

  if (!t.write_error.empty()) {
    throw Error(t.part_path, t.write_error, "check the disk space and permissions of the cache");
  }
  if (!closed_ok) throw Error(t.part_path, "closing the file failed (disk full?)");
  if (rc == CURLE_HTTP_RETURNED_ERROR) return code;  // the caller decides (416, 404, ...)
  if (rc != CURLE_OK) {
    const std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    const int64_t have = file_size_or_zero(t.part_path);
    throw Error(opts.url,
                "download failed: " + detail +
                    (have > 0 ? " (" + std::to_string(have) + " bytes kept in " + t.part_path +
                                    "; running again resumes)"
                              : ""),
                manual_hint(opts));
  }
  return code;
}

// Downloads and verifies; returns the full SHA-256 of the file now at opts.dest_path.
std::string download_verified(const DownloadOptions& opts) {
  require(!opts.url.empty(), "download", "no URL given");
  require(!opts.dest_path.empty(), opts.url, "no destination path given");
  sha256_matches(opts.sha256, std::string(64, '0'));  // validates the expected hash early
  const fs::path dest(opts.dest_path);
  if (dest.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(dest.parent_path(), ec);
    require(!ec, dest.parent_path().string(), "cannot create directory: " + ec.message());
  }

  Transfer t;
  t.part_path = opts.dest_path + ".part";
  TransferProgress progress(dest.filename().string(), opts.progress);
  t.progress = &progress;
  if (opts.progress) {
    const int64_t have = file_size_or_zero(t.part_path);
    log::info("downloading ", opts.url,
              have > 0 ? " (resuming at byte " + std::to_string(have) + ")" : "");
  }

  long code = fetch_once(opts, t, /*use_range=*/true);
  if (code == 416 && t.resume_from > 0) {
    // Range Not Satisfiable: the .part is not a prefix of this file (it changed upstream, or
    // the .part is complete or larger). Start over rather than guess.
    log::info("download: server refused to resume at byte ", t.resume_from, "; restarting");
    std::error_code ec;
    fs::remove(t.part_path, ec);
    code = fetch_once(opts, t, /*use_range=*/false);
  }
  if (code >= 400) {
    throw Error(opts.url, "download failed: the server answered HTTP " + std::to_string(code),
                manual_hint(opts));
  }
  const int64_t size = file_size_or_zero(t.part_path);
  progress.update(t.resume_from, size, size, true);

  const std::string actual = sha256_file(t.part_path);
  if (!sha256_matches(opts.sha256, actual)) {
    std::error_code ec;
    fs::remove(t.part_path, ec);
    throw Error(opts.url,
                "checksum mismatch: expected sha256 " + lower(opts.sha256) +
                    (opts.sha256.size() < 64 ? " (prefix)" : "") + ", got " + actual +
                    "; the partial file was deleted",
                "run again; if it fails again the file changed upstream or a proxy alters it: " +
                    manual_hint(opts));
  }
  std::error_code ec;
  fs::rename(t.part_path, dest, ec);  // atomic within one file system
  require(!ec, opts.dest_path, "cannot move the download into place: " + ec.message());
  return actual;
}

// The sidecar "<dest>.sha256" records "<sha256> <size> <mtime>" of a verified file.
std::string sidecar_record(const std::string& path, const std::string& hash) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return "";
  const auto mtime = fs::last_write_time(path, ec);
  if (ec) return "";
  return hash + " " + std::to_string(size) + " " +
         std::to_string(static_cast<long long>(mtime.time_since_epoch().count())) + "\n";
}

}  // namespace

bool sha256_matches(const std::string& expected, const std::string& actual) {
  if (expected.empty()) return true;
  const bool hex = std::all_of(expected.begin(), expected.end(),
                               [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
  require(hex && expected.size() >= 8 && expected.size() <= 64, "sha256 '" + expected + "'",
          "expected 8 to 64 hex digits (a prefix of the SHA-256, or all of it)");
  return lower(actual).compare(0, expected.size(), lower(expected)) == 0;
}

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, std::string("cannot open file: ") + std::strerror(errno));
  Sha256 sha;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    sha.update(reinterpret_cast<const uint8_t*>(buf.data()), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw Error(path, "read failed while hashing");
  return sha.hex();
}

void download_file(const DownloadOptions& opts) { download_verified(opts); }

std::string ensure_file(const std::string& url, const std::string& sha256, const std::string& dest,
                        bool progress) {
  const std::string sidecar = dest + ".sha256";
  std::error_code ec;
  if (fs::is_regular_file(dest, ec)) {
    if (sha256.empty()) return dest;
    sha256_matches(sha256, std::string(64, '0'));  // validates `sha256`
    // A sidecar written for this very file (same size and mtime) saves hashing it again.
    if (fs::is_regular_file(sidecar, ec)) {
      const std::string recorded = read_file_text(sidecar);
      const std::string hash = recorded.substr(0, recorded.find(' '));
      if (hash.size() == 64 && recorded == sidecar_record(dest, hash) &&
          sha256_matches(sha256, hash)) {
        return dest;
      }
    }
    const std::string actual = sha256_file(dest);
    if (!sha256_matches(sha256, actual)) {
      throw Error(dest,
                  "this file does not match its expected checksum: expected sha256 " +
                      lower(sha256) + ", got " + actual,
                  "delete it and run again to download " + url);
    }
    write_file_atomic(sidecar, sidecar_record(dest, actual));
    return dest;
  }
  DownloadOptions opts;
  opts.url = url;
  opts.sha256 = sha256;
  opts.dest_path = dest;
  opts.progress = progress;
  const std::string actual = download_verified(opts);
  write_file_atomic(sidecar, sidecar_record(dest, actual));
  return dest;
}

}  // namespace normlab::io
