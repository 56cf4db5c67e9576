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

// Streaming SHA-256 (FIPS 180-4), for data too large to hold at once (downloads, weights).
class Sha256 {
 public:
  void update(const void* data, size_t size);
  // Lowercase hex digest; finishes the hash (call once).
  std::string hex();

 private:
  void compress(const uint8_t* block);

  uint32_t h_[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,  // FIPS 180-4 5.3.3
                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  uint8_t block_[64] = {};
  size_t fill_ = 0;
  uint64_t total_bytes_ = 0;
};

// Lowercase hex SHA-256 of a byte string (FIPS 180-4).
std::string sha256_hex(const void* data, size_t size);
inline std::string sha256_hex(const std::string& s) { return sha256_hex(s.data(), s.size()); }

}  // namespace normlab
