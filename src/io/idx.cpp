// IDX reader. Format (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"):
//   bytes 0-1 zero, byte 2 element type (0x08 = unsigned byte), byte 3 number of dimensions,
//   then one big-endian uint32 per dimension, then the elements in row-major order.
// Gzip-compressed files (as distributed, and as Debian's dataset-fashion-mnist ships them)
// are recognised by the gzip magic 1f 8b (RFC 1952, section 2.3.1), not by the file name.
#include "io/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/files.h"

namespace normlab::io {
namespace {

// The only element type accepted: every MNIST-family file stores unsigned bytes.
constexpr uint8_t kIdxUnsignedByte = 0x08;

std::string hex_byte(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "0x%02x", b);
  return buf;
}

bool is_gzip(const std::vector<uint8_t>& bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

// Calls inflateEnd on every exit path.
struct InflateGuard {
  z_stream* zs;
  ~InflateGuard() { inflateEnd(zs); }
};

// Decompresses a whole gzip file (one or more members). Refuses a corrupt or truncated
// stream (zlib also checks each member's CRC-32 and length trailer) and non-gzip bytes after
// the last member.
std::vector<uint8_t> gunzip(const std::vector<uint8_t>& in, const std::string& path) {
  z_stream zs{};
  // 15 + 16: maximum window, expect a gzip (not zlib) wrapper (zlib.h, inflateInit2).
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw Error(path, "cannot initialise zlib");
  InflateGuard guard{&zs};

  // avail_in / avail_out are 32-bit, so large buffers are fed in slices.
  constexpr size_t kSlice = size_t{1} << 30;
  std::vector<uint8_t> out(std::max<size_t>(in.size() * 4, size_t{1} << 16));
  size_t fed = 0;  // input bytes handed to zlib so far
  size_t produced = 0;
  auto corrupt = [&](const std::string& why) {
    return Error(path, "corrupt gzip stream: " + why,
                 "the download is probably damaged; fetch the file again");
  };
  while (true) {
    if (zs.avail_in == 0 && fed < in.size()) {
      size_t n = std::min(kSlice, in.size() - fed);
      zs.next_in = const_cast<Bytef*>(in.data() + fed);
      zs.avail_in = static_cast<uInt>(n);
      fed += n;
    }
    if (produced == out.size()) out.resize(out.size() * 2);
    size_t room = std::min(kSlice, out.size() - produced);
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(room);
    int ret = inflate(&zs, Z_NO_FLUSH);
    produced += room - zs.avail_out;
    size_t consumed = fed - zs.avail_in;
    if (ret == Z_STREAM_END) {
      if (consumed == in.size()) break;
      std::vector<uint8_t> rest(in.begin() + static_cast<std::ptrdiff_t>(consumed), in.end());
      if (!is_gzip(rest)) {
        throw corrupt(std::to_string(in.size() - consumed) +
                      " trailing bytes after the end of the gzip data");
      }
      inflateReset(&zs);  // concatenated gzip members (RFC 1952, section 2.2)
      continue;
    }
    if (ret == Z_BUF_ERROR && zs.avail_out != 0) {
      // No progress possible with output room left: the input ran out mid-stream.
      throw corrupt("stream ends early (truncated after " + std::to_string(in.size()) +
                    " compressed bytes)");
    }
    if (ret != Z_OK && ret != Z_BUF_ERROR) {
      throw corrupt(zs.msg != nullptr ? zs.msg : "zlib error " + std::to_string(ret));
    }
  }
  out.resize(produced);
  return out;
}

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// `what` says whether sizes refer to the file or to its decompressed contents.
torch::Tensor parse_idx(const std::vector<uint8_t>& bytes, const std::string& path,
                        const std::string& what) {
  const std::string hint = "expected an IDX file such as train-images-idx3-ubyte[.gz]";
  require(bytes.size() >= 4, path,
          what + " is " + std::to_string(bytes.size()) + " bytes, too short for an IDX header",
          hint);
  require(bytes[0] == 0 && bytes[1] == 0, path,
          "bad magic number " + hex_byte(bytes[0]) + " " + hex_byte(bytes[1]) +
              " (an IDX file starts with two zero bytes)",
          hint);
  require(
      bytes[2] == kIdxUnsignedByte, path,
      "IDX element type " + hex_byte(bytes[2]) + " is not supported; only unsigned byte (0x08) is",
      hint);
  const size_t ndims = bytes[3];
  require(ndims >= 1, path, "IDX header declares 0 dimensions", hint);
  const size_t header = 4 + 4 * ndims;
  require(bytes.size() >= header, path,
          what + " is " + std::to_string(bytes.size()) +
              " bytes, too short for an IDX header with " + std::to_string(ndims) +
              " dimensions (" + std::to_string(header) + " bytes)",
          hint);

  std::vector<int64_t> dims(ndims);
  uint64_t count = 1;
  std::string shape;
  for (size_t i = 0; i < ndims; ++i) {
    uint32_t d = read_be32(bytes.data() + 4 + 4 * i);
    dims[i] = d;
    shape += (i ? " x " : "") + std::to_string(d);
    // Only overflow past the file size matters: such a header is refused just below.
    if (d != 0 && count > std::numeric_limits<uint64_t>::max() / d) {
      count = std::numeric_limits<uint64_t>::max();
    } else {
      count *= d;
    }
  }
  const uint64_t payload = bytes.size() - header;
  if (payload < count) {
    throw Error(path,
                "truncated: the header (" + shape + ") promises " + std::to_string(count) +
                    " data bytes but " + what + " holds " + std::to_string(payload),
                "the file is incomplete; fetch it again");
  }
  if (payload > count) {
    throw Error(path,
                std::to_string(payload - count) + " trailing bytes after the " +
                    std::to_string(count) + " data bytes the header (" + shape + ") describes",
                "the file is not a clean IDX file; fetch it again");
  }
  auto out = torch::empty(dims, torch::kUInt8);  // shape as in the header
  if (count > 0) std::memcpy(out.data_ptr<uint8_t>(), bytes.data() + header, count);
  return out;
}

}  // namespace

torch::Tensor read_idx(const std::string& path) {
  auto bytes = read_file_bytes(path);
  if (is_gzip(bytes)) return parse_idx(gunzip(bytes, path), path, "the decompressed data");
  return parse_idx(bytes, path, "the file");
}

}  // namespace normlab::io
