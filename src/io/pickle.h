// A small, strict unpickler for what torch.save(state_dict) writes into a .pth archive's
// data.pkl (pickle protocol 2): dicts (OrderedDict), lists, tuples, strings, numbers, and
// tensors rebuilt from storages. Only a whitelist of globals can be named; anything else
// (a pickled class, e.g. a whole nn.Module) is refused with an Error naming the global, so a
// file can never make this code run or construct arbitrary objects.
// Opcode reference: CPython's Lib/pickletools.py.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace normlab::io {

struct PickleValue {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kTuple,
    kList,
    kDict,
    kTensor,
    kGlobal,
    kStorage
  };
  using Items = std::vector<PickleValue>;
  using DictItems = std::vector<std::pair<PickleValue, PickleValue>>;

  Kind kind = Kind::kNone;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string str;                  // kString; kGlobal: "module.name"
  std::shared_ptr<Items> items;     // kTuple, kList (shared: the pickle memo aliases them)
  std::shared_ptr<DictItems> dict;  // kDict, in insertion order
  torch::Tensor tensor;             // kTensor; kStorage: the 1-D storage

  // Python's name for the kind ("int", "str", "dict", "Tensor", ...), for error messages.
  std::string type_name() const;
};

// Loads storage `key` of `numel` elements of `dtype` (the persistent id torch.save writes:
// ('storage', torch.FloatStorage, key, location, numel)); returns a 1-D tensor.
using StorageLoader =
    std::function<torch::Tensor(const std::string& key, torch::ScalarType dtype, int64_t numel)>;

struct UnpickleOptions {
  std::string name;            // for error messages (archive path and entry)
  StorageLoader load_storage;  // required when the pickle references storages
  // Upper bound on the bytes of all rebuilt tensors together. A strided view with zero
  // strides can describe far more elements than its storage holds; this keeps a damaged file
  // from allocating without limit (the .pth loader passes a multiple of the file size).
  uint64_t tensor_byte_budget = uint64_t{1} << 40;
};

// Unpickles `size` bytes. Throws Error(options.name, ...) on anything malformed or not
// whitelisted; never reads outside [data, data + size).
PickleValue unpickle(const uint8_t* data, size_t size, const UnpickleOptions& options);

// Bytes per element of the dtypes a storage can have; 0 for others.
size_t element_size(torch::ScalarType dtype);

}  // namespace normlab::io
