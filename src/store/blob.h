// Series and histogram blobs: arrays of little-endian 8-byte values, whatever the host's byte
// order. Internal to store/.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"

namespace normlab::store::detail {

// ---- blobs: little-endian 8-byte values, whatever the host's byte order ----

inline void put_u64(std::string& out, uint64_t v) {
  for (int b = 0; b < 8; ++b) out.push_back(static_cast<char>((v >> (8 * b)) & 0xff));
}

inline uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int b = 7; b >= 0; --b) v = (v << 8) | static_cast<unsigned char>(p[b]);
  return v;
}

inline std::string encode_int64s(const std::vector<int64_t>& values) {
  std::string out;
  out.reserve(8 * values.size());
  for (int64_t v : values) put_u64(out, static_cast<uint64_t>(v));
  return out;
}

// Bit-exact: NaN payloads and infinities survive.
inline std::string encode_doubles(const std::vector<double>& values) {
  std::string out;
  out.reserve(8 * values.size());
  for (double v : values) {
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    put_u64(out, bits);
  }
  return out;
}

inline void check_blob(const std::string& blob, const std::string& path, const std::string& what) {
  require(blob.size() % 8 == 0, path,
          what + ": blob of " + std::to_string(blob.size()) +
              " bytes is not a whole number of "
              "8-byte values (the store is damaged)");
}

inline std::vector<int64_t> decode_int64s(const std::string& blob, const std::string& path,
                                          const std::string& what) {
  check_blob(blob, path, what);
  std::vector<int64_t> out(blob.size() / 8);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int64_t>(get_u64(&blob[8 * i]));
  return out;
}

inline std::vector<double> decode_doubles(const std::string& blob, const std::string& path,
                                          const std::string& what) {
  check_blob(blob, path, what);
  std::vector<double> out(blob.size() / 8);
  for (size_t i = 0; i < out.size(); ++i) {
    uint64_t bits = get_u64(&blob[8 * i]);
    std::memcpy(&out[i], &bits, sizeof bits);
  }
  return out;
}

}  // namespace normlab::store::detail
