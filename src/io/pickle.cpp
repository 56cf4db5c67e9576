// Unpickler for torch.save(state_dict) output. A torch.save'd state dict reads, in pickle
// opcodes (python3 -m pickletools data.pkl):
//   GLOBAL 'collections OrderedDict', EMPTY_TUPLE, REDUCE          -> the dict
//   MARK, then per tensor: BINUNICODE name,
//     GLOBAL 'torch._utils _rebuild_tensor_v2', MARK,
//       MARK 'storage' GLOBAL 'torch FloatStorage' key 'cpu' numel TUPLE, BINPERSID,
//       offset, (sizes...), (strides...), NEWFALSE, OrderedDict(), TUPLE, REDUCE
//   SETITEMS, then {'_metadata': OrderedDict(...)} BUILD (module versions; ignored), STOP.
#include "io/pickle.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"

namespace normlab::io {
namespace {

using Kind = PickleValue::Kind;

// Opcodes (CPython Lib/pickletools.py, protocols 0-4; only those torch.save emits, plus the
// protocol 4 framing ones so a re-saved file with pickle_protocol=4 still loads).
enum Op : uint8_t {
  kMark = '(',
  kStop = '.',
  kBinInt = 'J',
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kNone = 'N',
  kBinPersId = 'Q',
  kReduce = 'R',
  kBinUnicode = 'X',
  kAppend = 'a',
  kBuild = 'b',
  kGlobal = 'c',
  kAppends = 'e',
  kBinGet = 'h',
  kLongBinGet = 'j',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kSetItem = 's',
  kTuple = 't',
  kSetItems = 'u',
  kEmptyDict = '}',
  kEmptyList = ']',
  kEmptyTuple = ')',
  kBinFloat = 'G',
  kProto = 0x80,
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kLong1 = 0x8a,
  kShortBinUnicode = 0x8c,
  kStackGlobal = 0x93,
  kMemoize = 0x94,
  kFrame = 0x95,
};

// The only globals a state dict needs. Storage classes map to their element type.
struct StorageType {
  const char* name;
  torch::ScalarType dtype;
};
constexpr StorageType kStorageTypes[] = {
    {"torch.FloatStorage", torch::kFloat32}, {"torch.DoubleStorage", torch::kFloat64},
    {"torch.HalfStorage", torch::kFloat16},  {"torch.BFloat16Storage", torch::kBFloat16},
    {"torch.LongStorage", torch::kInt64},    {"torch.IntStorage", torch::kInt32},
    {"torch.ShortStorage", torch::kInt16},   {"torch.CharStorage", torch::kInt8},
    {"torch.ByteStorage", torch::kUInt8},    {"torch.BoolStorage", torch::kBool},
};
// Deeper nesting is refused: a state dict nests 3 levels (checkpoint, dict, tuple), and the
// values are destroyed recursively.
constexpr int kMaxDepth = 1000;
constexpr const char* kOrderedDict = "collections.OrderedDict";
constexpr const char* kRebuildTensor = "torch._utils._rebuild_tensor_v2";
constexpr const char* kRebuildParameter = "torch._utils._rebuild_parameter";

bool storage_dtype(const std::string& global, torch::ScalarType* dtype) {
  for (const auto& s : kStorageTypes) {
    if (global == s.name) {
      *dtype = s.dtype;
      return true;
    }
  }
  return false;
}

bool host_is_little_endian() {
  const uint16_t one = 1;
  uint8_t first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

PickleValue make(Kind k) {
  PickleValue v;
  v.kind = k;
  return v;
}

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const UnpickleOptions& o)
      : p_(data), size_(size), o_(o) {}

  PickleValue run() {
    while (true) {
      op_pos_ = pos_;
      const uint8_t op = u8();
      switch (op) {
        case kProto: {
          const uint8_t proto = u8();
          if (proto > 5) fail("unsupported pickle protocol " + std::to_string(proto));
          break;
        }
        case kFrame:
          (void)le(8);  // framing is advisory; the opcodes are read as they come
          break;
        case kStop: {
          if (stack_.size() != 1 || !marks_.empty()) fail("STOP with a malformed stack");
          if (pos_ != size_) fail(std::to_string(size_ - pos_) + " bytes after STOP");
          return std::move(stack_.back());
        }
        case kMark:
          marks_.push_back(stack_.size());
          break;
        case kNone:
          push(make(Kind::kNone));
          break;
        case kNewTrue:
        case kNewFalse: {
          auto v = make(Kind::kBool);
          v.boolean = op == kNewTrue;
          push(std::move(v));
          break;
        }
        case kBinInt:
          push_int(static_cast<int32_t>(static_cast<uint32_t>(le(4))));
          break;
        case kBinInt1:
          push_int(u8());
          break;
        case kBinInt2:
          push_int(static_cast<int64_t>(le(2)));
          break;
        case kLong1: {
          const uint8_t n = u8();
          if (n > 8) fail("integer of " + std::to_string(n) + " bytes does not fit in int64");
          uint64_t v = n == 0 ? 0 : le(n);
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) != 0) v |= ~uint64_t{0} << (8 * n);  // sign
          push_int(static_cast<int64_t>(v));
          break;
        }
        case kBinFloat: {
          need(8);
          uint64_t bits = 0;  // big-endian IEEE 754 double
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | p_[pos_ + static_cast<size_t>(i)];
          pos_ += 8;
          auto v = make(Kind::kFloat);
          std::memcpy(&v.real, &bits, sizeof(double));
          push(std::move(v));
          break;
        }
        case kBinUnicode:
          push_string(le(4));
          break;
        case kShortBinUnicode:
          push_string(u8());
          break;
        case kEmptyDict: {
          auto v = make(Kind::kDict);
          v.dict = std::make_shared<PickleValue::DictItems>();
          push(std::move(v));
          break;
        }
        case kEmptyList:
          push(sequence(Kind::kList, {}));
          break;
        case kEmptyTuple:
          push(sequence(Kind::kTuple, {}));
          break;
        case kTuple:
          push(sequence(Kind::kTuple, pop_to_mark()));
          break;
        case kTuple1:
        case kTuple2:
        case kTuple3: {
          const size_t n = static_cast<size_t>(op - kTuple1 + 1);
          if (stack_size() < n) fail("TUPLE" + std::to_string(n) + " on a short stack");
          PickleValue::Items items(std::make_move_iterator(stack_.end() - static_cast<long>(n)),
                                   std::make_move_iterator(stack_.end()));
          stack_.resize(stack_.size() - n);
          push(sequence(Kind::kTuple, std::move(items)));
          break;
        }
        case kAppend: {
          auto item = pop();
          append(top(), {std::move(item)});
          break;
        }
        case kAppends: {
          auto items = pop_to_mark();
          append(top(), std::move(items));
          break;
        }
        case kSetItem: {
          auto value = pop();
          auto key = pop();
          PickleValue::Items kv;
          kv.push_back(std::move(key));
          kv.push_back(std::move(value));
          set_items(top(), std::move(kv));
          break;
        }
        case kSetItems: {
          auto kv = pop_to_mark();
          set_items(top(), std::move(kv));
          break;
        }
        case kBinPut:
          memo_[u8()] = top();
          break;
        case kLongBinPut:
          memo_[static_cast<uint32_t>(le(4))] = top();
          break;
        case kMemoize:
          memo_[static_cast<uint32_t>(memo_.size())] = top();
          break;
        case kBinGet:
          push(memo_get(u8()));
          break;
        case kLongBinGet:
          push(memo_get(static_cast<uint32_t>(le(4))));
          break;
        case kGlobal: {
          std::string module = line();
          std::string name = line();
          push(global(module + "." + name));
          break;
        }
        case kStackGlobal: {
          auto name = pop();
          auto module = pop();
          if (name.kind != Kind::kString || module.kind != Kind::kString) {
            fail("STACK_GLOBAL needs two strings");
          }
          push(global(module.str + "." + name.str));
          break;
        }
        case kReduce: {
          auto args = pop();
          auto callable = pop();
          push(reduce(callable, args));
          break;
        }
        case kBinPersId: {
          auto pid = pop();
          push(persistent_load(pid));
          break;
        }
        case kBuild: {
          const PickleValue state = pop();
          (void)state;
          // OrderedDict state is its __dict__, i.e. the state dict's `_metadata` (module
          // versions for _load_from_state_dict); normlab has no use for it.
          if (top().kind != Kind::kDict) fail("BUILD on a " + top().type_name());
          break;
        }
        default: {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "0x%02x", op);
          fail(std::string("unsupported pickle opcode ") + buf);
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(o_.name, problem + " (pickle byte " + std::to_string(op_pos_) + ")",
                "the file is damaged or was not written by torch.save(state_dict)");
  }

  void need(size_t n) const {
    if (n > size_ - pos_) fail("truncated pickle");
  }
  uint8_t u8() {
    need(1);
    return p_[pos_++];
  }
  uint64_t le(size_t n) {
    need(n);
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | p_[pos_ + i];
    pos_ += n;
    return v;
  }
  std::string line() {
    const void* nl = std::memchr(p_ + pos_, '\n', size_ - pos_);
    if (nl == nullptr) fail("unterminated GLOBAL name");
    const size_t end = static_cast<size_t>(static_cast<const uint8_t*>(nl) - p_);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), end - pos_);
    pos_ = end + 1;
    return s;
  }

  size_t stack_size() const { return stack_.size() - (marks_.empty() ? 0 : marks_.back()); }
  void push(PickleValue v) { stack_.push_back(std::move(v)); }
  void push_int(int64_t i) {
    auto v = make(Kind::kInt);
    v.integer = i;
    push(std::move(v));
  }
  void push_string(uint64_t n) {
    if (n > size_ - pos_) fail("string of " + std::to_string(n) + " bytes overruns the pickle");
    auto v = make(Kind::kString);
    v.str.assign(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    push(std::move(v));
  }
  PickleValue pop() {
    if (stack_size() == 0) fail("pop from an empty stack");
    PickleValue v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  PickleValue& top() {
    if (stack_size() == 0) fail("empty stack");
    return stack_.back();
  }
  PickleValue::Items pop_to_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    PickleValue::Items items(std::make_move_iterator(stack_.begin() + static_cast<long>(m)),
                             std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
  }
  PickleValue memo_get(uint32_t i) {
    auto it = memo_.find(i);
    if (it == memo_.end()) fail("memo entry " + std::to_string(i) + " was never stored");
    return it->second;
  }
  PickleValue sequence(Kind k, PickleValue::Items items) {
    int depth = 0;
    for (const auto& i : items) depth = std::max(depth, depth_of(i) + 1);
    auto v = make(k);
    v.items = std::make_shared<PickleValue::Items>(std::move(items));
    note_depth(v.items, depth);
    return v;
  }
  // Nesting depth of containers, tracked by identity (so memo aliases agree). Approximate: a
  // container that grows deeper after being nested does not update its parents, which only a
  // deliberately crafted pickle does. It keeps destruction (recursive) off the stack limit.
  int depth_of(const PickleValue& v) const {
    const void* id =
        v.items ? static_cast<const void*>(v.items.get()) : static_cast<const void*>(v.dict.get());
    if (id == nullptr) return 0;
    auto it = depth_.find(id);
    return it == depth_.end() ? 0 : it->second;
  }
  void note_depth(const std::shared_ptr<const void>& id, int depth) {
    if (depth > kMaxDepth) fail("containers nested deeper than " + std::to_string(kMaxDepth));
    auto [it, inserted] = depth_.emplace(id.get(), depth);
    if (inserted) keep_alive_.push_back(id);
    it->second = std::max(it->second, depth);
  }
  void append(PickleValue& list, PickleValue::Items items) {
    if (list.kind != Kind::kList) fail("APPEND to a " + list.type_name());
    for (auto& i : items) {
      note_depth(list.items, depth_of(i) + 1);
      list.items->push_back(std::move(i));
    }
  }
  // Dict keys as Python would compare them (str, int, bool, None); other kinds never match.
  static bool key_text(const PickleValue& k, std::string* out) {
    switch (k.kind) {
      case Kind::kString:
        *out = "s" + k.str;
        return true;
      case Kind::kInt:
        *out = "i" + std::to_string(k.integer);
        return true;
      case Kind::kBool:
        *out = k.boolean ? "i1" : "i0";  // True == 1 in Python
        return true;
      case Kind::kNone:
        *out = "n";
        return true;
      default:
        return false;
    }
  }
  void set_items(PickleValue& dict, PickleValue::Items kv) {
    if (dict.kind != Kind::kDict) fail("SETITEM on a " + dict.type_name());
    if (kv.size() % 2 != 0) fail("SETITEMS with an odd number of items");
    // Python dict semantics: a repeated key replaces the value in place. The index keeps
    // that linear in the number of items.
    if (key_index_.count(dict.dict.get()) == 0) keep_alive_.push_back(dict.dict);
    auto& index = key_index_[dict.dict.get()];
    for (size_t i = 0; i < kv.size(); i += 2) {
      note_depth(dict.dict, std::max(depth_of(kv[i]), depth_of(kv[i + 1])) + 1);
      std::string text;
      if (key_text(kv[i], &text)) {
        auto [it, inserted] = index.emplace(std::move(text), dict.dict->size());
        if (!inserted) {
          (*dict.dict)[it->second].second = std::move(kv[i + 1]);
          continue;
        }
      }
      dict.dict->emplace_back(std::move(kv[i]), std::move(kv[i + 1]));
    }
  }

  PickleValue global(const std::string& name) {
    torch::ScalarType dtype{};
    if (name != kOrderedDict && name != kRebuildTensor && name != kRebuildParameter &&
        !storage_dtype(name, &dtype)) {
      throw Error(o_.name,
                  "refusing to unpickle global '" + name +
                      "': only state dicts (tensors in dicts) can be loaded, not pickled "
                      "Python objects",
                  "save the weights with torch.save(model.state_dict(), path); a file made "
                  "by torch.save(model) can be converted in Python (trusted files only) with "
                  "torch.save(torch.load(path).state_dict(), new_path)");
    }
    auto v = make(Kind::kGlobal);
    v.str = name;
    return v;
  }

  PickleValue reduce(const PickleValue& callable, const PickleValue& args) {
    if (callable.kind != Kind::kGlobal) fail("REDUCE on a " + callable.type_name());
    if (args.kind != Kind::kTuple) fail("REDUCE arguments are a " + args.type_name());
    const auto& a = *args.items;
    if (callable.str == kOrderedDict) {
      if (!a.empty()) fail("OrderedDict() with arguments");
      auto v = make(Kind::kDict);
      v.dict = std::make_shared<PickleValue::DictItems>();
      return v;
    }
    if (callable.str == kRebuildTensor) return rebuild_tensor(a);
    if (callable.str == kRebuildParameter) {
      // _rebuild_parameter(data, requires_grad, backward_hooks): the data is what we keep.
      if (a.size() != 3 || a[0].kind != Kind::kTensor) fail("bad _rebuild_parameter arguments");
      return a[0];
    }
    fail("cannot call '" + callable.str + "'");
  }

  int64_t as_int(const PickleValue& v, const char* what) const {
    if (v.kind != Kind::kInt) fail(std::string(what) + " is a " + v.type_name() + ", not an int");
    return v.integer;
  }
  std::vector<int64_t> int_tuple(const PickleValue& v, const char* what) const {
    if (v.kind != Kind::kTuple) fail(std::string(what) + " is a " + v.type_name());
    std::vector<int64_t> out;
    for (const auto& i : *v.items) {
      const int64_t x = as_int(i, what);
      if (x < 0) fail(std::string(what) + " has a negative entry " + std::to_string(x));
      out.push_back(x);
    }
    return out;
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks
  // [, metadata]) (torch/_utils.py): a strided view into the storage, copied out contiguous.
  PickleValue rebuild_tensor(const PickleValue::Items& a) {
    if (a.size() != 6 && a.size() != 7)
      fail("_rebuild_tensor_v2 with " + std::to_string(a.size()) + " arguments");
    if (a[0].kind != Kind::kStorage) fail("_rebuild_tensor_v2 of a " + a[0].type_name());
    const torch::Tensor& storage = a[0].tensor;
    const int64_t offset = as_int(a[1], "storage offset");
    const auto size = int_tuple(a[2], "tensor size");
    const auto stride = int_tuple(a[3], "tensor stride");
    if (size.size() != stride.size()) fail("tensor size and stride differ in length");
    if (offset < 0) fail("negative storage offset");
    int64_t numel = 1;
    int64_t last = offset;  // the largest storage index the view touches
    for (size_t d = 0; d < size.size(); ++d) {
      int64_t reach = 0;
      if (__builtin_mul_overflow(numel, size[d], &numel) ||
          (size[d] > 0 && (__builtin_mul_overflow(size[d] - 1, stride[d], &reach) ||
                           __builtin_add_overflow(last, reach, &last)))) {
        fail("tensor size overflows");
      }
    }
    auto v = make(Kind::kTensor);
    if (numel == 0) {
      v.tensor = torch::empty(size, storage.options());
      return v;
    }
    if (last >= storage.numel()) {
      fail("tensor view (offset " + std::to_string(offset) + ", size " + torch::str(size) +
           ", stride " + c10::str(c10::IntArrayRef(stride)) + ") reaches past its storage of " +
           std::to_string(storage.numel()) + " elements");
    }
    const uint64_t bytes = static_cast<uint64_t>(numel) * storage.element_size();
    if (bytes / storage.element_size() != static_cast<uint64_t>(numel) ||
        bytes > o_.tensor_byte_budget - spent_) {
      fail("tensor of " + std::to_string(numel) +
           " elements is far larger than the file can describe");
    }
    spent_ += bytes;
    torch::Tensor view = storage.as_strided(size, stride, offset);
    if (offset == 0 && numel == storage.numel() && view.is_contiguous() &&
        handed_out_.insert(storage.unsafeGetTensorImpl()).second) {
      // The whole storage, in order, and no other tensor uses it yet: no copy needed. Later
      // views of the same storage are copied, so returned tensors never alias each other.
      v.tensor = view;
    } else {
      v.tensor = view.clone(at::MemoryFormat::Contiguous);
    }
    return v;
  }

  // ('storage', StorageType, key, location, numel) -> the storage's elements.
  PickleValue persistent_load(const PickleValue& pid) {
    if (pid.kind != Kind::kTuple || pid.items->size() != 5) {
      fail("persistent id is not a 5-tuple");
    }
    const auto& t = *pid.items;
    torch::ScalarType dtype{};
    if (t[0].kind != Kind::kString || t[0].str != "storage" || t[1].kind != Kind::kGlobal ||
        !storage_dtype(t[1].str, &dtype) || t[2].kind != Kind::kString ||
        t[3].kind != Kind::kString) {
      fail("persistent id is not ('storage', StorageType, key, location, numel)");
    }
    const int64_t numel = as_int(t[4], "storage size");
    if (numel < 0) fail("negative storage size");
    if (!o_.load_storage) fail("storage reference outside an archive");
    if (!host_is_little_endian()) {
      throw Error(o_.name, "reading .pth files needs a little-endian machine");
    }
    auto v = make(Kind::kStorage);
    v.tensor = o_.load_storage(t[2].str, dtype, numel);
    return v;
  }

  const uint8_t* p_;
  size_t size_;
  const UnpickleOptions& o_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  uint64_t spent_ = 0;
  std::vector<PickleValue> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, PickleValue> memo_;
  // Both maps are keyed by container address; keep_alive_ holds every keyed container, so
  // no address is reused by a new container while the maps still describe the old one.
  std::vector<std::shared_ptr<const void>> keep_alive_;
  std::unordered_set<const void*> handed_out_;  // storages returned without a copy
  std::unordered_map<const void*, int> depth_;
  std::unordered_map<const void*, std::unordered_map<std::string, size_t>> key_index_;
};

}  // namespace

std::string PickleValue::type_name() const {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kTuple:
      return "tuple";
    case Kind::kList:
      return "list";
    case Kind::kDict:
      return "dict";
    case Kind::kTensor:
      return "Tensor";
    case Kind::kGlobal:
      return "global " + str;
    case Kind::kStorage:
      return "storage";
  }
  return "?";
}

size_t element_size(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat64:
    case torch::kInt64:
      return 8;
    case torch::kFloat32:
    case torch::kInt32:
      return 4;
    case torch::kFloat16:
    case torch::kBFloat16:
    case torch::kInt16:
      return 2;
    case torch::kInt8:
    case torch::kUInt8:
    case torch::kBool:
      return 1;
    default:
      return 0;
  }
}

PickleValue unpickle(const uint8_t* data, size_t size, const UnpickleOptions& options) {
  return Unpickler(data, size, options).run();
}

}  // namespace normlab::io
