// Fixtures for tests of downloads and archives, shared by tests/io and tests/data: a tiny
// HTTP/1.1 server on 127.0.0.1 (plain POSIX sockets; supports Range requests, can ignore
// them, serve 404s or cut a response short) and a libarchive-based archive writer.
// Loopback only: tests never touch the real network.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace normlab::testing {

class LocalHttpServer {
 public:
  struct Request {
    std::string path;
    std::string range;       // value of the Range header, "" when absent
    int status = 0;          // status answered
    int64_t body_bytes = 0;  // body bytes sent (or cut short at)
  };

  LocalHttpServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd_ < 0) throw std::runtime_error("socket failed");
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;  // any free port
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(listen_fd_, 16) != 0) {
      close(listen_fd_);
      throw std::runtime_error("bind/listen on 127.0.0.1 failed");
    }
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~LocalHttpServer() {
    stop_ = true;
    thread_.join();
    close(listen_fd_);
  }
  LocalHttpServer(const LocalHttpServer&) = delete;
  LocalHttpServer& operator=(const LocalHttpServer&) = delete;

  void serve(const std::string& path, const std::string& body) {
    std::lock_guard<std::mutex> lock(mu_);
    files_[path] = body;
  }
  void remove(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    files_.erase(path);
  }
  // false: answer every request with 200 and the whole file, like a server without ranges.
  void set_honor_range(bool honor) { honor_range_ = honor; }
  // >= 0: announce the full length but close the connection after this many body bytes.
  void set_cut_after(int64_t bytes) { cut_after_ = bytes; }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<Request> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      handle(fd);
      close(fd);
    }
  }

  static bool send_all(int fd, const char* data, size_t size) {
    while (size > 0) {
      ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }

  void handle(int fd) {
    std::string head;
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 2000) <= 0) return;
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      head.append(buf, static_cast<size_t>(n));
    }
    Request req;
    const size_t sp1 = head.find(' ');
    const size_t sp2 = head.find(' ', sp1 + 1);
    req.path = head.substr(sp1 + 1, sp2 - sp1 - 1);
    for (const std::string key : {"\r\nRange: ", "\r\nrange: "}) {
      if (size_t at = head.find(key); at != std::string::npos) {
        const size_t start = at + key.size();
        req.range = head.substr(start, head.find("\r\n", start) - start);
      }
    }
    std::string body;
    bool found = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = files_.find(req.path); it != files_.end()) {
        body = it->second;
        found = true;
      }
    }
    std::string extra;
    size_t offset = 0;
    if (!found) {
      req.status = 404;
      body = "not found";
    } else if (honor_range_ && req.range.rfind("bytes=", 0) == 0) {
      offset = std::stoull(req.range.substr(6));  // "bytes=N-"
      if (offset >= body.size()) {
        req.status = 416;
        extra = "Content-Range: bytes */" + std::to_string(body.size()) + "\r\n";
        body.clear();
        offset = 0;
      } else {
        req.status = 206;
        extra = "Content-Range: bytes " + std::to_string(offset) + "-" +
                std::to_string(body.size() - 1) + "/" + std::to_string(body.size()) + "\r\n";
      }
    } else {
      req.status = 200;
    }
    const size_t length = body.size() - offset;
    const std::string reason = req.status == 200   ? "OK"
                               : req.status == 206 ? "Partial Content"
                               : req.status == 404 ? "Not Found"
                                                   : "Range Not Satisfiable";
    const std::string header = "HTTP/1.1 " + std::to_string(req.status) + " " + reason +
                               "\r\nContent-Length: " + std::to_string(length) + "\r\n" + extra +
                               "Connection: close\r\n\r\n";
    size_t send_bytes = length;
    if (cut_after_ >= 0 && static_cast<size_t>(cut_after_) < length) {
      send_bytes = static_cast<size_t>(cut_after_);
    }
    // Recorded before sending: the client may return as soon as the last byte arrives.
    req.body_bytes = static_cast<int64_t>(send_bytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
    }
    if (send_all(fd, header.data(), header.size())) send_all(fd, body.data() + offset, send_bytes);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> honor_range_{true};
  std::atomic<int64_t> cut_after_{-1};
  mutable std::mutex mu_;
  std::map<std::string, std::string> files_;
  std::vector<Request> requests_;
  std::thread thread_;
};

// A port on 127.0.0.1 with nothing listening (bound, then released).
inline int unused_local_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

struct ArchiveEntry {
  ArchiveEntry(std::string path_, std::string data_ = "", unsigned type_ = AE_IFREG,
               std::string link_target_ = "")
      : path(std::move(path_)),
        data(std::move(data_)),
        type(type_),
        link_target(std::move(link_target_)) {}

  std::string path;
  std::string data;
  unsigned type;            // AE_IFREG, AE_IFDIR or AE_IFLNK
  std::string link_target;  // for AE_IFLNK
};

enum class ArchiveKind { kTarGz, kZip };

// Writes an archive holding `entries` exactly as given (paths are not sanitized, so
// malicious archives can be built too).
inline std::string archive_bytes(const std::vector<ArchiveEntry>& entries, ArchiveKind kind) {
  struct archive* a = archive_write_new();
  if (kind == ArchiveKind::kTarGz) {
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_gzip(a);
  } else {
    archive_write_set_format_zip(a);
  }
  std::vector<char> buf(1 << 20);
  size_t used = 0;
  if (archive_write_open_memory(a, buf.data(), buf.size(), &used) != ARCHIVE_OK) {
    throw std::runtime_error(archive_error_string(a));
  }
  for (const auto& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, e.type == AE_IFDIR ? 0755 : 0644);
    archive_entry_set_size(entry, e.type == AE_IFREG ? static_cast<la_int64_t>(e.data.size()) : 0);
    if (e.type == AE_IFLNK) archive_entry_set_symlink(entry, e.link_target.c_str());
    if (archive_write_header(a, entry) != ARCHIVE_OK) {
      throw std::runtime_error(archive_error_string(a));
    }
    if (e.type == AE_IFREG && !e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
  return std::string(buf.data(), used);
}

}  // namespace normlab::testing
