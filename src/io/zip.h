// A strict, read-only zip archive reader (PKWARE APPNOTE.TXT 6.3.x): the end of central
// directory record (and its ZIP64 form), the central directory and the local headers; stored
// and deflate entries. Enough for PyTorch's .pth archives (stored, ZIP64, data descriptors)
// and for zips repacked by other tools. Every offset and size is checked against the archive
// before it is used, so a damaged file is refused with an Error and never makes the reader
// read out of bounds or allocate more than the data can produce.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace normlab::io {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflate
  uint32_t crc32 = 0;   // of the uncompressed bytes
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t data_offset = 0;  // first byte of the (compressed) data in the archive
};

class ZipReader {
 public:
  // `name` is used in error messages (normally the path the bytes came from).
  ZipReader(std::vector<uint8_t> bytes, std::string name);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& entry_name) const;  // nullptr when absent
  // The uncompressed bytes of `entry`, CRC-checked. Throws Error naming archive and entry.
  std::vector<uint8_t> read(const ZipEntry& entry) const;
  // The same into `dst`, which must hold entry.uncompressed_size bytes (saves a copy).
  void read_into(const ZipEntry& entry, uint8_t* dst) const;
  const std::string& name() const { return name_; }

 private:
  void check_crc(const ZipEntry& entry, const uint8_t* data, uint64_t size) const;

  std::vector<uint8_t> bytes_;
  std::string name_;
  std::vector<ZipEntry> entries_;
};

// True when `bytes` starts with a zip local file header signature ("PK\3\4").
bool looks_like_zip(const std::vector<uint8_t>& bytes);

}  // namespace normlab::io
