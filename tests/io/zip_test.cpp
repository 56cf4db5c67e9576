// io/zip against archives built here byte by byte (stored, deflate, ZIP64 extra fields) and
// against a real torch.save archive (tests/fixtures/io, scripts/gen_io_fixtures.py).
#include "io/zip.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>

#include "core/files.h"
#include "test_files.h"

namespace normlab::io {
namespace {

using testing::Bytes;
using testing::expect_error;

std::string fixture(const std::string& name) {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" / "io" / name)
      .string();
}

void put(Bytes& b, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

Bytes raw_deflate(const Bytes& data) {
  z_stream zs{};
  // -15: raw deflate, as zip stores it (zlib.h, deflateInit2).
  if (deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  Bytes out(deflateBound(&zs, static_cast<uLong>(data.size())) + 16);
  zs.next_in = const_cast<Bytef*>(data.data());
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

struct TestEntry {
  std::string name;
  Bytes data;
  bool deflate = false;
};

struct ZipOptions {
  bool zip64_extra = false;  // sizes and offsets as 0xFFFFFFFF plus a ZIP64 extra field
  uint16_t method = 0xFFFF;  // override the method written (0xFFFF: the real one)
  uint16_t flags = 0;
  int64_t usize_delta = 0;  // added to the declared uncompressed size
  bool bad_crc = false;
};

// A minimal zip writer (APPNOTE 4.3.7, 4.3.12, 4.3.16), no data descriptors.
Bytes make_zip(const std::vector<TestEntry>& entries, const ZipOptions& o = {}) {
  Bytes out;
  Bytes central;
  for (const auto& e : entries) {
    const Bytes payload = e.deflate ? raw_deflate(e.data) : e.data;
    const uint16_t method = o.method != 0xFFFF ? o.method : (e.deflate ? 8 : 0);
    uint32_t crc = static_cast<uint32_t>(crc32(0, e.data.data(), static_cast<uInt>(e.data.size())));
    if (o.bad_crc) crc ^= 1;
    const uint64_t usize =
        static_cast<uint64_t>(static_cast<int64_t>(e.data.size()) + o.usize_delta);
    const uint64_t offset = out.size();
    put(out, 0x04034b50, 4);
    put(out, 20, 2);
    put(out, o.flags, 2);
    put(out, method, 2);
    put(out, 0, 4);
    put(out, crc, 4);
    put(out, payload.size(), 4);
    put(out, usize, 4);
    put(out, e.name.size(), 2);
    put(out, 0, 2);
    out.insert(out.end(), e.name.begin(), e.name.end());
    out.insert(out.end(), payload.begin(), payload.end());

    put(central, 0x02014b50, 4);
    put(central, 20, 2);
    put(central, 20, 2);
    put(central, o.flags, 2);
    put(central, method, 2);
    put(central, 0, 4);
    put(central, crc, 4);
    put(central, o.zip64_extra ? 0xFFFFFFFF : payload.size(), 4);
    put(central, o.zip64_extra ? 0xFFFFFFFF : usize, 4);
    put(central, e.name.size(), 2);
    put(central, o.zip64_extra ? 28 : 0, 2);
    put(central, 0, 2);
    put(central, 0, 2);
    put(central, 0, 2);
    put(central, 0, 4);
    put(central, o.zip64_extra ? 0xFFFFFFFF : offset, 4);
    central.insert(central.end(), e.name.begin(), e.name.end());
    if (o.zip64_extra) {
      put(central, 0x0001, 2);
      put(central, 24, 2);
      put(central, usize, 8);
      put(central, payload.size(), 8);
      put(central, offset, 8);
    }
  }
  const uint64_t cd_offset = out.size();
  out.insert(out.end(), central.begin(), central.end());
  put(out, 0x06054b50, 4);
  put(out, 0, 4);
  put(out, entries.size(), 2);
  put(out, entries.size(), 2);
  put(out, central.size(), 4);
  put(out, cd_offset, 4);
  put(out, 0, 2);
  return out;
}

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

Bytes pattern(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>((i * 7) % 13);  // compressible
  return b;
}

TEST(Zip, ReadsStoredAndDeflateEntries) {
  const Bytes big = pattern(100000);
  ZipReader zip(make_zip({{"a.txt", text("hello")}, {"dir/b.bin", big, true}, {"empty", {}}}),
                "test.zip");
  ASSERT_EQ(zip.entries().size(), 3u);
  EXPECT_EQ(zip.entries()[1].method, 8);
  EXPECT_LT(zip.entries()[1].compressed_size, 10000u);
  EXPECT_EQ(zip.read(*zip.find("a.txt")), text("hello"));
  EXPECT_EQ(zip.read(*zip.find("dir/b.bin")), big);
  EXPECT_TRUE(zip.read(*zip.find("empty")).empty());
  EXPECT_EQ(zip.find("missing"), nullptr);
}

TEST(Zip, ReadsZip64ExtraFields) {
  const Bytes big = pattern(5000);
  ZipOptions o;
  o.zip64_extra = true;
  ZipReader zip(make_zip({{"x", text("abc")}, {"y", big, true}}, o), "z64.zip");
  EXPECT_EQ(zip.read(*zip.find("x")), text("abc"));
  EXPECT_EQ(zip.read(*zip.find("y")), big);
}

TEST(Zip, ReadsTorchSaveArchiveWithZip64Records) {
  // PyTorch always writes the ZIP64 end records, stores entries and uses data descriptors.
  ZipReader zip(read_file_bytes(fixture("small_state_dict.pth")), "small_state_dict.pth");
  const ZipEntry* pkl = zip.find("small_state_dict/data.pkl");
  ASSERT_NE(pkl, nullptr);
  const Bytes b = zip.read(*pkl);
  ASSERT_GT(b.size(), 2u);
  EXPECT_EQ(b[0], 0x80);  // PROTO
  EXPECT_EQ(b[1], 2);
  EXPECT_EQ(b.back(), '.');  // STOP
  EXPECT_EQ(zip.read(*zip.find("small_state_dict/version")), text("3\n"));
}

TEST(Zip, RefusesNonZipAndTruncatedFiles) {
  expect_error([] { ZipReader(text("PK\3\4 not really"), "short.zip"); },
               {"short.zip", "end of central directory"});
  Bytes z = make_zip({{"a", text("hello")}});
  z.resize(z.size() - 5);
  expect_error([&] { ZipReader(z, "cut.zip"); }, {"cut.zip", "corrupt zip"});
  Bytes pth = read_file_bytes(fixture("small_state_dict.pth"));
  pth.resize(pth.size() / 2);
  expect_error([&] { ZipReader(pth, "half.pth"); }, {"half.pth"});
}

TEST(Zip, RefusesSizesPastTheFile) {
  Bytes z = make_zip({{"a", text("hello")}});
  // Central directory entry: compressed size at +20 and uncompressed at +24 from its start.
  const size_t cd = z.size() - 22 - (46 + 1);
  for (size_t i = 0; i < 4; ++i) z[cd + 20 + i] = z[cd + 24 + i] = 0x7f;
  expect_error([&] { ZipReader(z, "huge.zip"); }, {"huge.zip", "'a'", "runs into the central"});
}

TEST(Zip, RefusesBadCrc) {
  ZipOptions o;
  o.bad_crc = true;
  ZipReader zip(make_zip({{"a", text("hello")}}, o), "crc.zip");
  expect_error([&] { zip.read(zip.entries()[0]); }, {"crc.zip", "CRC-32", "'a'"});
}

TEST(Zip, RefusesWrongDeflateSizeAndUnsupportedMethods) {
  ZipOptions longer;
  longer.usize_delta = 3;
  ZipReader z1(make_zip({{"d", pattern(1000), true}}, longer), "len.zip");
  expect_error([&] { z1.read(z1.entries()[0]); }, {"len.zip", "'d'", "wrong size"});
  ZipOptions shorter;
  shorter.usize_delta = -3;
  ZipReader z2(make_zip({{"d", pattern(1000), true}}, shorter), "len2.zip");
  expect_error([&] { z2.read(z2.entries()[0]); }, {"len2.zip", "'d'", "wrong size"});
  ZipOptions lie;
  lie.usize_delta = int64_t{1} << 40;  // a terabyte from a few bytes: refused up front
  lie.zip64_extra = true;              // (a 64-bit size field)
  expect_error(
      [&] {
        ZipReader(make_zip({{"d", pattern(1000), true}}, lie), "bomb.zip");
      },
      {"bomb.zip", "more than deflate can produce"});
  ZipOptions bzip2;
  bzip2.method = 12;
  expect_error(
      [&] {
        ZipReader(make_zip({{"b", text("x")}}, bzip2), "bz.zip");
      },
      {"bz.zip", "compression method 12"});
  ZipOptions enc;
  enc.flags = 1;
  expect_error(
      [&] {
        ZipReader(make_zip({{"e", text("x")}}, enc), "enc.zip");
      },
      {"enc.zip", "encrypted"});
}

TEST(Zip, RefusesDuplicateNamesAndAbsurdEntryCounts) {
  expect_error(
      [] {
        ZipReader(make_zip({{"a", text("1")}, {"a", text("2")}}), "dup.zip");
      },
      {"dup.zip", "duplicate entry 'a'"});
  Bytes z = make_zip({{"a", text("1")}});
  z[z.size() - 22 + 8] = 0xff;  // entries on this disk / total: 65535
  z[z.size() - 22 + 9] = 0xfe;
  z[z.size() - 22 + 10] = 0xff;
  z[z.size() - 22 + 11] = 0xfe;
  expect_error([&] { ZipReader(z, "count.zip"); }, {"count.zip", "cannot fit"});
}

}  // namespace
}  // namespace normlab::io
