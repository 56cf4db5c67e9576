// Small filesystem helpers shared by every layer that writes files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace normlab {

// Reads a whole file; throws Error naming the path when it cannot be opened or read.
std::vector<uint8_t> read_file_bytes(const std::string& path);
std::string read_file_text(const std::string& path);

// Writes `data` to `path` atomically: a temporary file in the same directory is written,
// flushed to disk and renamed over `path`, so a crash or a full disk never leaves a
// half-written file behind. Throws Error naming the path on failure.
void write_file_atomic(const std::string& path, const void* data, size_t size);
void write_file_atomic(const std::string& path, const std::string& text);

// Lowercase hex SHA-256 of a byte string (FIPS 180-4).
std::string sha256_hex(const void* data, size_t size);
inline std::string sha256_hex(const std::string& s) { return sha256_hex(s.data(), s.size()); }

}  // namespace normlab
