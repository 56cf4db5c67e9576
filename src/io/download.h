// HTTP(S) downloads into normlab's cache: resumable, checksummed, atomic.
//
// A download is written to "<dest>.part" and renamed to <dest> only once it is complete and
// its SHA-256 matches, so <dest> is either absent or verified. An interrupted download keeps
// its .part and the next attempt resumes it with an HTTP Range request; a server that answers
// 200 instead of 206 (no range support) restarts it from byte 0.
#pragma once

#include <string>

namespace normlab::io {

struct DownloadOptions {
  std::string url;
  // Expected SHA-256 in hex (either case). Empty = not checked. A prefix of at least 8 hex
  // digits is accepted and checks only those digits: torchvision names its weight files with
  // the first 8 hex digits of their SHA-256 (hub.py, check_hash), and that prefix is all some
  // registries know. 64 digits is the full check.
  std::string sha256;
  std::string dest_path;
  bool progress = true;  // bytes, MB/s and ETA on stderr
  // Seconds allowed to connect, and to go without receiving a byte, before giving up. The
  // whole transfer has no limit: large files on slow links must be able to finish.
  long timeout_s = 30;
};

// Downloads opts.url to opts.dest_path (parent directories are created). Throws Error:
// - naming the URL, the expected and the actual hash when the checksum does not match (the
//   .part file is deleted: resuming it could never succeed);
// - naming the URL, the cause and the exact path to place the file at, with the command to
//   download it elsewhere, when the network or server fails (the .part is kept to resume).
void download_file(const DownloadOptions& opts);

// Returns `dest` once it holds the file: an existing file is verified against `sha256` once
// and the result is remembered in "<dest>.sha256" (hash, size and modification time), so large
// files are not hashed again; a missing file is downloaded. An existing file with another
// hash is refused (Error naming both hashes) rather than overwritten.
std::string ensure_file(const std::string& url, const std::string& sha256, const std::string& dest,
                        bool progress = true);

// Lowercase hex SHA-256 of a file, read in chunks (files larger than memory are fine).
std::string sha256_file(const std::string& path);

// Whether `actual` (64 hex digits) matches `expected` (empty, a prefix of >= 8 hex digits, or
// the full hash; case-insensitive). Throws Error when `expected` is not such a string.
bool sha256_matches(const std::string& expected, const std::string& actual);

}  // namespace normlab::io
