// Zip reader. Record layouts from PKWARE's APPNOTE.TXT (version 6.3.10):
//   4.3.16 end of central directory record (EOCD), 22 bytes + comment
//   4.3.15 ZIP64 end of central directory locator, 20 bytes, right before the EOCD
//   4.3.14 ZIP64 end of central directory record, 56 bytes + extensible data
//   4.3.12 central directory file header, 46 bytes + name + extra + comment
//   4.3.7  local file header, 30 bytes + name + extra, then the entry's data
//   4.5.3  ZIP64 extended information extra field (id 0x0001)
// PyTorch's writer (caffe2/serialize/inline_container.cc, via miniz) always writes the ZIP64
// records, stores entries uncompressed, and sets flag bit 3 (sizes in a data descriptor after
// the data, zero in the local header), so sizes are taken from the central directory only.
#include "io/zip.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "core/error.h"

namespace normlab::io {
namespace {

constexpr uint32_t kEocdSignature = 0x06054b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr uint32_t kZip64EocdSignature = 0x06064b50;
constexpr uint32_t kCentralSignature = 0x02014b50;
constexpr uint32_t kLocalSignature = 0x04034b50;
constexpr size_t kEocdSize = 22;
constexpr size_t kZip64LocatorSize = 20;
constexpr size_t kZip64EocdSize = 56;
constexpr size_t kCentralSize = 46;
constexpr size_t kLocalSize = 30;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kMethodStored = 0;
constexpr uint16_t kMethodDeflate = 8;
// Deflate cannot compress better than about 1032:1 (zlib FAQ, "maximum compression ratio"),
// so a larger declared size is a lie; refusing it bounds what a damaged file can allocate.
constexpr uint64_t kMaxDeflateRatio = 1032;

// Bounds-checked little-endian reads from the archive bytes.
class Bytes {
 public:
  Bytes(const std::vector<uint8_t>& b, const std::string& name) : b_(b), name_(name) {}

  void need(uint64_t offset, uint64_t len, const char* what) const {
    if (offset > b_.size() || len > b_.size() - offset) {
      throw Error(name_,
                  std::string("corrupt zip archive: ") + what + " at byte " +
                      std::to_string(offset) + " (" + std::to_string(len) +
                      " bytes) runs past the end of the file (" + std::to_string(b_.size()) +
                      " bytes)",
                  "the file is truncated or damaged; download or save it again");
    }
  }
  uint64_t le(uint64_t offset, int n) const {
    need(offset, static_cast<uint64_t>(n), "field");
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | b_[offset + static_cast<uint64_t>(i)];
    return v;
  }
  uint16_t u16(uint64_t o) const { return static_cast<uint16_t>(le(o, 2)); }
  uint32_t u32(uint64_t o) const { return static_cast<uint32_t>(le(o, 4)); }
  uint64_t u64(uint64_t o) const { return le(o, 8); }
  uint64_t size() const { return b_.size(); }
  const uint8_t* data() const { return b_.data(); }

 private:
  const std::vector<uint8_t>& b_;
  const std::string& name_;
};

Error corrupt(const std::string& name, const std::string& problem) {
  return Error(name, "corrupt zip archive: " + problem,
               "the file is truncated or damaged; download or save it again");
}

struct Directory {
  uint64_t count = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};

// Finds the EOCD (the last one whose comment ends exactly at the end of the file) and, when
// present, the ZIP64 record it points to.
Directory find_directory(const Bytes& b, const std::string& name) {
  if (b.size() < kEocdSize) {
    throw corrupt(name, "file of " + std::to_string(b.size()) +
                            " bytes is too short for an end of central directory record");
  }
  const uint64_t lowest = b.size() >= kEocdSize + 0xFFFF ? b.size() - kEocdSize - 0xFFFF : 0;
  uint64_t eocd = UINT64_MAX;
  for (uint64_t pos = b.size() - kEocdSize + 1; pos-- > lowest;) {
    if (b.u32(pos) == kEocdSignature && pos + kEocdSize + b.u16(pos + 20) == b.size()) {
      eocd = pos;
      break;
    }
  }
  if (eocd == UINT64_MAX) throw corrupt(name, "no end of central directory record");
  if (b.u16(eocd + 4) != 0 || b.u16(eocd + 6) != 0) {
    throw Error(name, "multi-part (spanned) zip archives are not supported");
  }
  Directory d{b.u16(eocd + 10), b.u32(eocd + 16), b.u32(eocd + 12)};
  if (eocd >= kZip64LocatorSize && b.u32(eocd - kZip64LocatorSize) == kZip64LocatorSignature) {
    const uint64_t loc = eocd - kZip64LocatorSize;
    const uint64_t rec = b.u64(loc + 8);
    if (b.u32(loc + 4) != 0 || b.u32(loc + 16) > 1) {
      throw Error(name, "multi-part (spanned) zip archives are not supported");
    }
    b.need(rec, kZip64EocdSize, "ZIP64 end of central directory record");
    if (loc < kZip64EocdSize || rec > loc - kZip64EocdSize || b.u32(rec) != kZip64EocdSignature) {
      throw corrupt(name,
                    "bad ZIP64 end of central directory record at byte " + std::to_string(rec));
    }
    if (b.u32(rec + 16) != 0 || b.u32(rec + 20) != 0) {
      throw Error(name, "multi-part (spanned) zip archives are not supported");
    }
    d = Directory{b.u64(rec + 32), b.u64(rec + 48), b.u64(rec + 40)};
  } else if (d.count == 0xFFFF || d.offset == 0xFFFFFFFF || d.size == 0xFFFFFFFF) {
    throw corrupt(name, "ZIP64 sizes announced but no ZIP64 end of central directory locator");
  }
  b.need(d.offset, d.size, "central directory");
  if (d.offset + d.size > eocd) {
    throw corrupt(name, "central directory overlaps the end of central directory record");
  }
  if (d.count > d.size / kCentralSize) {
    throw corrupt(name, std::to_string(d.count) + " entries cannot fit in a central directory of " +
                            std::to_string(d.size) + " bytes");
  }
  return d;
}

// Applies the ZIP64 extra field (APPNOTE 4.5.3) to the fields saturated at 0xFFFFFFFF.
void apply_zip64_extra(const Bytes& b, uint64_t extra, uint64_t extra_len, ZipEntry& e,
                       uint64_t& local_offset, const std::string& name) {
  const bool need_u = e.uncompressed_size == 0xFFFFFFFF;
  const bool need_c = e.compressed_size == 0xFFFFFFFF;
  const bool need_o = local_offset == 0xFFFFFFFF;
  uint64_t pos = extra;
  const uint64_t end = extra + extra_len;
  while (pos + 4 <= end) {
    const uint16_t id = b.u16(pos);
    const uint16_t len = b.u16(pos + 2);
    if (pos + 4 + len > end) throw corrupt(name, "extra field of '" + e.name + "' overruns");
    if (id == kZip64ExtraId) {
      uint64_t f = pos + 4;
      const uint64_t fend = f + len;
      auto take = [&](uint64_t& field) {
        if (f + 8 > fend) throw corrupt(name, "short ZIP64 extra field in '" + e.name + "'");
        field = b.u64(f);
        f += 8;
      };
      if (need_u) take(e.uncompressed_size);
      if (need_c) take(e.compressed_size);
      if (need_o) take(local_offset);
      return;
    }
    pos += 4 + len;
  }
  if (need_u || need_c || need_o) {
    throw corrupt(name, "entry '" + e.name + "' needs a ZIP64 extra field but has none");
  }
}

}  // namespace

bool looks_like_zip(const std::vector<uint8_t>& bytes) {
  return bytes.size() >= 4 && bytes[0] == 'P' && bytes[1] == 'K' && bytes[2] == 3 && bytes[3] == 4;
}

ZipReader::ZipReader(std::vector<uint8_t> bytes, std::string name)
    : bytes_(std::move(bytes)), name_(std::move(name)) {
  const Bytes b(bytes_, name_);
  const Directory dir = find_directory(b, name_);
  std::set<std::string> seen;
  uint64_t pos = dir.offset;
  const uint64_t dir_end = dir.offset + dir.size;
  for (uint64_t i = 0; i < dir.count; ++i) {
    if (pos + kCentralSize > dir_end || b.u32(pos) != kCentralSignature) {
      throw corrupt(name_, "central directory entry " + std::to_string(i) + " at byte " +
                               std::to_string(pos) + " is missing or damaged");
    }
    ZipEntry e;
    const uint16_t flags = b.u16(pos + 8);
    e.method = b.u16(pos + 10);
    e.crc32 = b.u32(pos + 16);
    e.compressed_size = b.u32(pos + 20);
    e.uncompressed_size = b.u32(pos + 24);
    const uint64_t name_len = b.u16(pos + 28);
    const uint64_t extra_len = b.u16(pos + 30);
    const uint64_t comment_len = b.u16(pos + 32);
    uint64_t local = b.u32(pos + 42);
    const uint64_t var = pos + kCentralSize;
    if (var + name_len + extra_len + comment_len > dir_end) {
      throw corrupt(name_, "central directory entry " + std::to_string(i) + " overruns");
    }
    e.name.assign(reinterpret_cast<const char*>(b.data() + var), name_len);
    apply_zip64_extra(b, var + name_len, extra_len, e, local, name_);
    if (flags & 0x1) throw Error(name_, "entry '" + e.name + "' is encrypted; not supported");
    if (e.method != kMethodStored && e.method != kMethodDeflate) {
      throw Error(name_, "entry '" + e.name + "' uses compression method " +
                             std::to_string(e.method) +
                             "; only stored (0) and deflate (8) are "
                             "supported");
    }
    if (!seen.insert(e.name).second) throw corrupt(name_, "duplicate entry '" + e.name + "'");

    // The local header repeats the name; its own sizes may be zero (flag bit 3).
    if (local > dir.offset || dir.offset - local < kLocalSize || b.u32(local) != kLocalSignature) {
      throw corrupt(name_, "local header of '" + e.name + "' at byte " + std::to_string(local) +
                               " is missing or damaged");
    }
    const uint64_t lname = b.u16(local + 26);
    const uint64_t lextra = b.u16(local + 28);
    e.data_offset = local + kLocalSize + lname + lextra;
    if (e.data_offset > dir.offset || e.compressed_size > dir.offset - e.data_offset) {
      throw corrupt(name_, "data of '" + e.name + "' (" + std::to_string(e.compressed_size) +
                               " bytes at byte " + std::to_string(e.data_offset) +
                               ") runs into the central directory");
    }
    if (lname != name_len ||
        !std::equal(e.name.begin(), e.name.end(), b.data() + local + kLocalSize)) {
      throw corrupt(name_, "local header name differs from central directory for '" + e.name + "'");
    }
    if (e.method == kMethodStored && e.compressed_size != e.uncompressed_size) {
      throw corrupt(name_, "stored entry '" + e.name + "' has different compressed (" +
                               std::to_string(e.compressed_size) + ") and uncompressed (" +
                               std::to_string(e.uncompressed_size) + ") sizes");
    }
    if (e.method == kMethodDeflate &&
        e.uncompressed_size / kMaxDeflateRatio > e.compressed_size + 1) {
      throw corrupt(name_, "entry '" + e.name + "' claims " + std::to_string(e.uncompressed_size) +
                               " bytes from " + std::to_string(e.compressed_size) +
                               " compressed bytes, more than deflate can produce");
    }
    entries_.push_back(std::move(e));
    pos = var + name_len + extra_len + comment_len;
  }
}

const ZipEntry* ZipReader::find(const std::string& entry_name) const {
  for (const auto& e : entries_) {
    if (e.name == entry_name) return &e;
  }
  return nullptr;
}

void ZipReader::read_into(const ZipEntry& e, uint8_t* dst) const {
  if (e.method == kMethodStored) {
    // Offsets were validated against the file in the constructor.
    if (e.compressed_size > 0) std::memcpy(dst, bytes_.data() + e.data_offset, e.compressed_size);
    check_crc(e, dst, e.compressed_size);
    return;
  }
  const auto out = read(e);
  if (!out.empty()) std::memcpy(dst, out.data(), out.size());
}

void ZipReader::check_crc(const ZipEntry& e, const uint8_t* data, uint64_t size) const {
  // crc32 takes 32-bit lengths; feed it in slices.
  uLong crc = crc32(0L, Z_NULL, 0);
  for (uint64_t done = 0; done < size;) {
    const uint64_t n = std::min<uint64_t>(size - done, uint64_t{1} << 30);
    crc = crc32(crc, data + done, static_cast<uInt>(n));
    done += n;
  }
  if (crc != e.crc32) {
    throw corrupt(name_, "CRC-32 mismatch in entry '" + e.name + "'");
  }
}

std::vector<uint8_t> ZipReader::read(const ZipEntry& e) const {
  // Offsets were validated against the file in the constructor.
  const uint8_t* src = bytes_.data() + e.data_offset;
  std::vector<uint8_t> out;
  if (e.method == kMethodStored) {
    out.assign(src, src + e.compressed_size);
  } else {
    z_stream zs{};
    // -15: raw deflate, no zlib or gzip wrapper (zlib.h, inflateInit2).
    if (inflateInit2(&zs, -15) != Z_OK) throw Error(name_, "cannot initialise zlib");
    struct Guard {
      z_stream* zs;
      ~Guard() { inflateEnd(zs); }
    } guard{&zs};
    // Grow with what the stream really produces, not with what the header claims; one byte
    // beyond the declared size tells a too-long stream apart from an exact one.
    const uint64_t cap = e.uncompressed_size + 1;
    constexpr uint64_t kSlice = uint64_t{1} << 30;  // avail_in/avail_out are 32-bit
    uint64_t fed = 0;
    size_t produced = 0;
    int ret = Z_OK;
    while (true) {
      if (zs.avail_in == 0 && fed < e.compressed_size) {
        const uint64_t n = std::min(kSlice, e.compressed_size - fed);
        zs.next_in = const_cast<Bytef*>(src + fed);
        zs.avail_in = static_cast<uInt>(n);
        fed += n;
      }
      if (produced == out.size()) {
        if (out.size() >= cap) break;
        out.resize(static_cast<size_t>(
            std::min<uint64_t>(cap, std::max<uint64_t>(out.size() * 2, uint64_t{1} << 16))));
      }
      zs.next_out = out.data() + produced;
      zs.avail_out = static_cast<uInt>(std::min<uint64_t>(kSlice, out.size() - produced));
      const uInt out_before = zs.avail_out;
      const uInt in_before = zs.avail_in;
      ret = inflate(&zs, Z_NO_FLUSH);
      produced += out_before - zs.avail_out;
      if (ret == Z_STREAM_END) break;
      if (ret != Z_OK && ret != Z_BUF_ERROR) break;
      if (out_before == zs.avail_out && in_before == zs.avail_in) break;  // no progress
    }
    if (ret != Z_STREAM_END || produced != e.uncompressed_size) {
      throw corrupt(name_, "deflate data of '" + e.name + "' is damaged or has the wrong size (" +
                               std::to_string(produced) + " bytes, expected " +
                               std::to_string(e.uncompressed_size) + ")");
    }
    out.resize(produced);
  }
  check_crc(e, out.data(), out.size());
  return out;
}

}  // namespace normlab::io
