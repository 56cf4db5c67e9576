// Archive extraction for downloaded datasets: .tar.gz / .tgz / .tar / .zip, and a single
// gzip-compressed file (.gz), through libarchive.
#pragma once

#include <string>
#include <vector>

namespace normlab::io {

// Extracts `archive_path` into `dest_dir` (created if missing) and returns the paths written,
// in archive order. A plain ".gz" file (not a tarball) is decompressed to dest_dir/<name
// without .gz>. Regular files and directories only: an entry with an absolute path or a ".."
// component (path traversal, CVE-2007-4559 style), a symlink, a hard link or a device is
// refused with an Error naming the archive and the entry, before anything is written for it.
// Files are written to a temporary name and renamed, so an interrupted extraction never
// leaves a truncated file under its final name.
std::vector<std::string> extract_archive(const std::string& archive_path,
                                         const std::string& dest_dir);

}  // namespace normlab::io
