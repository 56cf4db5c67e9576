#include "io/archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/error.h"

namespace normlab::io {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A single gzip-compressed file rather than a compressed tarball.
bool is_plain_gzip(const std::string& path) {
  return ends_with(path, ".gz") && !ends_with(path, ".tar.gz");
}

// Checks an entry's path and returns it relative to the destination: refuses absolute paths
// and ".." components, drops "." components. Empty result = nothing to extract (the root).
fs::path safe_relative_path(const std::string& archive_path, const std::string& name) {
  const std::string subject = archive_path + ": entry '" + name + "'";
  require(!name.empty() && name[0] != '/', subject,
          "absolute paths are refused (the entry would be written outside the destination)",
          "extract this archive by hand if you trust it");
  fs::path out;
  for (const auto& part : fs::path(name)) {
    const std::string s = part.string();
    require(s != "..", subject,
            "'..' path components are refused (path traversal: the entry would be written "
            "outside the destination)",
            "extract this archive by hand if you trust it");
    if (s.empty() || s == ".") continue;
    out /= part;
  }
  return out;
}

using ArchivePtr = std::unique_ptr<struct archive, decltype(&archive_read_free)>;

}  // namespace

std::vector<std::string> extract_archive(const std::string& archive_path,
                                         const std::string& dest_dir) {
  ArchivePtr a(archive_read_new(), archive_read_free);
  require(a != nullptr, archive_path, "libarchive: archive_read_new failed");
  archive_read_support_filter_all(a.get());
  const bool raw = is_plain_gzip(archive_path);
  if (raw) {
    // The "raw" format presents the decompressed stream as one entry named "data".
    archive_read_support_format_raw(a.get());
  } else {
    archive_read_support_format_all(a.get());
  }
  // 64 KiB blocks: fewer read calls on large tarballs.
  if (archive_read_open_filename(a.get(), archive_path.c_str(), 1 << 16) != ARCHIVE_OK) {
    throw Error(archive_path, std::string("cannot open archive: ") + archive_error_string(a.get()));
  }
  std::error_code ec;
  fs::create_directories(dest_dir, ec);
  require(!ec, dest_dir, "cannot create directory: " + ec.message());

  std::vector<std::string> written;
  std::vector<char> buf(1 << 16);
  archive_entry* entry = nullptr;
  for (;;) {
    const int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      throw Error(archive_path,
                  std::string("corrupt or unsupported archive: ") + archive_error_string(a.get()));
    }
    std::string name;
    if (raw) {
      const std::string file = fs::path(archive_path).filename().string();
      name = file.substr(0, file.size() - 3);  // drop ".gz"
    } else {
      const char* p = archive_entry_pathname(entry);
      require(p != nullptr, archive_path, "an entry has no readable path name");
      name = p;
    }
    const fs::path rel = safe_relative_path(archive_path, name);
    const fs::path target = fs::path(dest_dir) / rel;
    const auto type = archive_entry_filetype(entry);
    if (type == AE_IFDIR || rel.empty()) {
      if (!rel.empty()) fs::create_directories(target, ec);
      require(!ec, target.string(), "cannot create directory: " + ec.message());
      continue;
    }
    // The raw format reports no file type; everything else must be a regular file.
    require(raw || type == AE_IFREG, archive_path + ": entry '" + name + "'",
            "only regular files and directories are extracted (this is a link or device)",
            "extract this archive by hand if you trust it");
    fs::create_directories(target.parent_path(), ec);
    require(!ec, target.parent_path().string(), "cannot create directory: " + ec.message());

    const std::string tmp = target.string() + ".extracting";
    std::FILE* out = std::fopen(tmp.c_str(), "wb");
    require(out != nullptr, tmp, std::string("cannot open for writing: ") + std::strerror(errno));
    for (;;) {
      const la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
      if (n == 0) break;
      if (n < 0) {
        std::fclose(out);
        fs::remove(tmp, ec);
        throw Error(archive_path, "corrupt archive while reading '" + name +
                                      "': " + archive_error_string(a.get()));
      }
      if (std::fwrite(buf.data(), 1, static_cast<size_t>(n), out) != static_cast<size_t>(n)) {
        const int err = errno;
        std::fclose(out);
        fs::remove(tmp, ec);
        throw Error(tmp, std::string("write failed: ") + std::strerror(err),
                    "check the free disk space");
      }
    }
    const bool closed = std::fclose(out) == 0;
    require(closed, tmp, "closing the file failed (disk full?)");
    fs::rename(tmp, target, ec);
    require(!ec, target.string(), "cannot move extracted file into place: " + ec.message());
    written.push_back(target.string());
  }
  return written;
}

}  // namespace normlab::io
