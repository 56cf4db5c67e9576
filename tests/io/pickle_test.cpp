// io/pickle on pickles written opcode by opcode (CPython Lib/pickletools.py), as torch.save
// would write them, and on malformed ones.
#include "io/pickle.h"

#include <gtest/gtest.h>

#include "test_files.h"

namespace normlab::io {
namespace {

using testing::expect_error;
using Kind = PickleValue::Kind;

// A pickle builder: each call appends one opcode with its argument.
struct P {
  std::vector<uint8_t> b;
  P() { op(0x80).op(2); }  // PROTO 2
  P& op(uint8_t o) {
    b.push_back(o);
    return *this;
  }
  P& str(const std::string& s) {  // BINUNICODE
    op('X');
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(s.size() >> (8 * i)));
    for (char c : s) b.push_back(static_cast<uint8_t>(c));
    return *this;
  }
  P& int1(uint8_t v) { return op('K').op(v); }
  P& int4(int32_t v) {
    op('J');
    for (int i = 0; i < 4; ++i)
      b.push_back(static_cast<uint8_t>(static_cast<uint32_t>(v) >> (8 * i)));
    return *this;
  }
  P& global(const std::string& module, const std::string& name) {
    op('c');
    for (char c : module + "\n" + name + "\n") b.push_back(static_cast<uint8_t>(c));
    return *this;
  }
  // ('storage', torch.<type>, key, 'cpu', numel) BINPERSID
  P& storage(const std::string& type, const std::string& key, uint8_t numel) {
    op('(').str("storage").global("torch", type).str(key).str("cpu").int1(numel).op('t');
    return op('Q');
  }
  // _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())
  P& tensor(const std::string& key, uint8_t numel, uint8_t offset, std::vector<uint8_t> size,
            std::vector<uint8_t> stride) {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    storage("FloatStorage", key, numel).int1(offset).op('(');
    for (auto s : size) int1(s);
    op('t').op('(');
    for (auto s : stride) int1(s);
    op('t').op(0x89).global("collections", "OrderedDict").op(')').op('R').op('t');
    return op('R');
  }
};

// Storage `key` holds 0, 1, 2, ... as float32.
UnpickleOptions arange_storages(int* calls = nullptr) {
  UnpickleOptions o;
  o.name = "test.pkl";
  o.load_storage = [calls](const std::string& key, torch::ScalarType dtype, int64_t numel) {
    if (calls) ++*calls;
    EXPECT_EQ(dtype, torch::kFloat32);
    return torch::arange(numel, torch::kFloat32) + (key == "1" ? 100 : 0);
  };
  return o;
}

PickleValue load(const P& p, const UnpickleOptions& o = arange_storages()) {
  return unpickle(p.b.data(), p.b.size(), o);
}

TEST(Pickle, ReadsScalarsContainersAndMemo) {
  P p;
  p.op('}').op('q').op(0).op('(');                // dict, memo 0
  p.str("int").int4(-123456);                     // BININT
  p.str("small").int1(200);                       // BININT1
  p.str("word").op('M').op(0x34).op(0x12);        // BININT2 0x1234
  p.str("neg").op(0x8a).op(2).op(0x00).op(0xff);  // LONG1 -256
  p.str("big").op(0x8a).op(8);                    // LONG1 2^62
  for (int i = 0; i < 7; ++i) p.op(0);
  p.op(0x40);
  p.str("pi").op('G');  // BINFLOAT, big-endian
  for (uint8_t x : {0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18}) p.op(x);
  p.str("flags").op(0x88).op(0x89).op('N').op(0x87);  // (True, False, None)
  p.str("list").op(']').op('q').op(1).int1(1).op('a').op('(').int1(2).int1(3).op('e');
  p.str("again").op('h').op(1);                   // BINGET: the same list
  p.str("short").op(0x8c).op(2).op('h').op('i');  // SHORT_BINUNICODE
  p.op('u').op('.');
  const PickleValue v = load(p);
  ASSERT_EQ(v.kind, Kind::kDict);
  const auto& d = *v.dict;
  ASSERT_EQ(d.size(), 10u);
  EXPECT_EQ(d[0].first.str, "int");
  EXPECT_EQ(d[0].second.integer, -123456);
  EXPECT_EQ(d[1].second.integer, 200);
  EXPECT_EQ(d[2].second.integer, 0x1234);
  EXPECT_EQ(d[3].second.integer, -256);
  EXPECT_EQ(d[4].second.integer, int64_t{1} << 62);
  EXPECT_DOUBLE_EQ(d[5].second.real, 3.141592653589793);
  ASSERT_EQ(d[6].second.kind, Kind::kTuple);
  EXPECT_TRUE((*d[6].second.items)[0].boolean);
  EXPECT_FALSE((*d[6].second.items)[1].boolean);
  EXPECT_EQ((*d[6].second.items)[2].kind, Kind::kNone);
  ASSERT_EQ(d[7].second.kind, Kind::kList);
  EXPECT_EQ(d[7].second.items->size(), 3u);
  EXPECT_EQ(d[8].second.items, d[7].second.items);  // the memo aliases, as in Python
  EXPECT_EQ(d[9].second.str, "hi");
}

TEST(Pickle, RebuildsStridedTensorsAndSharesStorages) {
  int calls = 0;
  P p;
  p.global("collections", "OrderedDict").op(')').op('R').op('(');
  p.str("base").tensor("0", 12, 0, {3, 4}, {4, 1});
  p.str("view").tensor("0", 12, 5, {2, 2}, {4, 2});  // rows 1-2, columns 1 and 3
  p.str("other").tensor("1", 3, 0, {3}, {1});
  p.op('u');
  // BUILD with {'_metadata': ...}: an OrderedDict's attributes, ignored.
  p.op('}').str("_metadata").op('}').op('s').op('b').op('.');
  const PickleValue v = load(p, arange_storages(&calls));
  ASSERT_EQ(v.kind, Kind::kDict);
  ASSERT_EQ(v.dict->size(), 3u);
  EXPECT_EQ(calls, 3);  // caching storages is the caller's job (state_dict.cpp)
  const auto& view = (*v.dict)[1].second.tensor;
  EXPECT_TRUE(view.is_contiguous());
  EXPECT_TRUE(torch::equal(view, torch::tensor({5.f, 7.f, 9.f, 11.f}).view({2, 2})));
  EXPECT_TRUE(torch::equal((*v.dict)[2].second.tensor, torch::tensor({100.f, 101.f, 102.f})));
}

TEST(Pickle, RefusesGlobalsOutsideTheWhitelist) {
  P p;
  p.global("os", "system").str("echo hi").op(0x85).op('R').op('.');
  expect_error([&] { load(p); }, {"test.pkl", "refusing to unpickle global 'os.system'"});
  P q;
  q.global("__main__", "Net").op(')').op(0x81).op('.');
  expect_error([&] { load(q); }, {"'__main__.Net'", "state_dict()"});
}

TEST(Pickle, RefusesViewsOutsideTheirStorage) {
  P p;
  p.tensor("0", 12, 5, {2, 4}, {4, 1}).op('.');  // reaches element 12 of 12
  expect_error([&] { load(p); }, {"reaches past its storage of 12 elements"});
  P q;
  q.tensor("0", 12, 0, {255, 255}, {0, 0}).op('.');  // fine, 65025 floats (budget 1 TiB)
  EXPECT_EQ(load(q).tensor.numel(), 255 * 255);
  auto o = arange_storages();
  o.tensor_byte_budget = 1000;  // an expanded view larger than the budget is refused
  expect_error([&] { load(q, o); }, {"far larger than the file"});
}

TEST(Pickle, RepeatedKeysReplaceValuesLikePython) {
  P p;
  p.op('}').op('(').str("a").int1(1).str("b").int1(2).str("a").int1(3).op('u');
  p.int1(1).int1(4).op('s').op(0x88).int1(5).op('s').op('.');  // True == 1 in Python
  const PickleValue v = load(p);
  ASSERT_EQ(v.dict->size(), 3u);
  EXPECT_EQ((*v.dict)[0].first.str, "a");
  EXPECT_EQ((*v.dict)[0].second.integer, 3);
  EXPECT_EQ((*v.dict)[2].first.integer, 1);
  EXPECT_EQ((*v.dict)[2].second.integer, 5);
}

TEST(Pickle, RefusesDeepNesting) {
  P p;
  for (int i = 0; i < 1500; ++i) p.op(']');
  for (int i = 0; i < 1499; ++i) p.op('a');
  p.op('.');
  expect_error([&] { load(p); }, {"nested deeper than 1000"});
  P q;
  q.op(')');
  for (int i = 0; i < 1500; ++i) q.op(0x85);  // ((((),),),)...
  q.op('.');
  expect_error([&] { load(q); }, {"nested deeper than 1000"});
}

TEST(Pickle, RefusesMalformedPickles) {
  auto bytes = [](std::vector<uint8_t> b) {
    P p;
    for (uint8_t x : b) p.op(x);
    return p;
  };
  expect_error([&] { load(bytes({'X', 0xff, 0xff, 0xff, 0x7f, 'a'})); }, {"overruns the pickle"});
  expect_error([&] { load(bytes({'N'})); }, {"truncated pickle"});
  expect_error([&] { load(bytes({'N', '.', 'N'})); }, {"1 bytes after STOP"});
  expect_error([&] { load(bytes({'h', 7, '.'})); }, {"memo entry 7 was never stored"});
  expect_error([&] { load(bytes({'a', '.'})); }, {"empty stack"});
  expect_error([&] { load(bytes({'N', 'N', 'a', '.'})); }, {"APPEND to a None"});
  expect_error([&] { load(bytes({'e', '.'})); }, {"no MARK"});
  expect_error([&] { load(bytes({'(', 'N', 'N', '.'})); }, {"STOP with a malformed stack"});
  expect_error([&] { load(bytes({'N', 'I', '.'})); }, {"unsupported pickle opcode 0x49"});
  expect_error(
      [&] {
        load(bytes({0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, '.'}));
      },
      {"does not fit in int64"});
  // A persistent id that is not ('storage', type, key, location, numel).
  expect_error([&] { load(bytes({'N', 'Q', '.'})); }, {"persistent id is not a 5-tuple"});
}

}  // namespace
}  // namespace normlab::io
