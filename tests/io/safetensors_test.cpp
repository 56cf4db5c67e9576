// io/safetensors: round trips for every dtype, and each validation rule on a crafted file.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include "test_files.h"

namespace normlab::io {
namespace {

using testing::Bytes;
using testing::expect_error;

// A file with header `json` (unpadded) and `buffer_bytes` zero bytes of data.
Bytes file(const std::string& json, size_t buffer_bytes) {
  // push_back, not insert: GCC 12's -Warray-bounds misfires on vector::insert at -O3.
  Bytes b;
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(json.size() >> (8 * i)));
  for (char c : json) b.push_back(static_cast<uint8_t>(c));
  b.resize(b.size() + buffer_bytes);
  return b;
}

StateDict parse(const Bytes& b) { return parse_safetensors(b, "t.safetensors"); }

TEST(Safetensors, RoundTripsEveryDtype) {
  StateDict sd;
  sd.items = {
      {"f32", torch::randn({2, 3})},
      {"f16", torch::randn({4}).to(torch::kFloat16)},
      {"bf16", torch::randn({1, 2, 2}).to(torch::kBFloat16)},
      {"f64", torch::randn({3}, torch::kFloat64)},
      {"i64", torch::tensor({-(int64_t{1} << 60), int64_t{5}})},
      {"i32", torch::tensor({-3, 4}, torch::kInt32)},
      {"i16", torch::tensor({-300}, torch::kInt16)},
      {"i8", torch::tensor({-128, 127}, torch::kInt8)},
      {"u8", torch::tensor({0, 255}, torch::kUInt8)},
      {"bool", torch::tensor({true, false})},
      {"scalar", torch::tensor(1.5)},
      {"empty", torch::zeros({0, 4})},
      {"transposed", torch::arange(6.f).view({2, 3}).t()},  // written contiguous
  };
  sd.metadata = {{"k", "v"}};
  const Bytes b = encode_safetensors(sd);
  EXPECT_EQ((b[0] | (b[1] << 8)) % 8, 0);  // header padded to 8 bytes
  const StateDict back = parse(b);
  ASSERT_EQ(back.items.size(), sd.items.size());
  for (size_t i = 0; i < sd.items.size(); ++i) {
    SCOPED_TRACE(sd.items[i].first);
    EXPECT_EQ(back.items[i].first, sd.items[i].first);
    EXPECT_EQ(back.items[i].second.scalar_type(), sd.items[i].second.scalar_type());
    EXPECT_TRUE(torch::equal(back.items[i].second, sd.items[i].second));
  }
  EXPECT_EQ(back.metadata, sd.metadata);
}

TEST(Safetensors, OrdersTensorsByOffsetNotByName) {
  const auto sd = parse(file(R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                             R"("a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})",
                             3));
  ASSERT_EQ(sd.items.size(), 2u);
  EXPECT_EQ(sd.items[0].first, "b");
  EXPECT_EQ(sd.items[1].first, "a");
}

TEST(Safetensors, RefusesBadHeaders) {
  expect_error([] { parse(Bytes{1, 2, 3}); }, {"t.safetensors", "less than the 8-byte"});
  Bytes huge = file("{}", 0);
  huge[7] = 0x7f;  // header size ~ 9e18
  expect_error([&] { parse(huge); }, {"t.safetensors", "exceeds the file"});
  expect_error([] { parse(file("{\"a\":", 0)); }, {"not valid JSON"});
  expect_error([] { parse(file("[1]", 0)); }, {"does not start with '{'"});
  expect_error(
      [] {
        parse(file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                   R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                   2));
      },
      {"tensor 'a' appears twice"});
  expect_error([] { parse(file(R"({"__metadata__":{"n":1}})", 0)); },
               {"__metadata__ value 'n' is not a string"});
}

TEST(Safetensors, RefusesBadEntries) {
  expect_error([] { parse(file(R"({"w":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", 1)); },
               {"tensor 'w'", "dtype 'F8' is not supported"});
  expect_error([] { parse(file(R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1)); },
               {"tensor 'w'", "is not a size"});
  expect_error(
      [] { parse(file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}})", 1)); },
      {"tensor 'w'", "unknown field 'x'"});
  expect_error([] { parse(file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4)); },
               {"tensor 'w'", "hold 4 bytes", "needs 8"});
  expect_error(
      [] {
        parse(file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],)"
                   R"("data_offsets":[0,4]}})",
                   4));
      },
      {"tensor 'w'", "overflows"});
  expect_error([] { parse(file(R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[0]}})", 2)); },
               {"tensor 'w'", "data_offsets must be [begin, end]"});
}

TEST(Safetensors, RefusesGapsOverlapsAndTruncation) {
  const std::string two = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)";
  expect_error(
      [&] { parse(file(two + R"("b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})", 3)); },
      {"tensor 'b'", "overlaps"});
  expect_error(
      [&] { parse(file(two + R"("b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}})", 5)); },
      {"tensor 'b'", "gap"});
  expect_error(
      [&] { parse(file(two + R"("b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", 3)); },
      {"tensor 'b'", "truncated"});
  expect_error(
      [&] { parse(file(two + R"("b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", 6)); },
      {"2 bytes after the last tensor"});
}

TEST(Safetensors, EncodeRefusesRepeatedNamesAndUnsupportedDtypes) {
  StateDict sd;
  sd.items = {{"a", torch::zeros(1)}, {"a", torch::zeros(1)}};
  expect_error([&] { encode_safetensors(sd); }, {"tensor 'a'", "repeated"});
  sd.items = {{"c", torch::zeros(1, torch::kComplexFloat)}};
  expect_error([&] { encode_safetensors(sd); }, {"cannot hold this dtype"});
}

}  // namespace
}  // namespace normlab::io
