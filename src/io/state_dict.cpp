// load_state_dict: content sniffing, then either the safetensors parser or the native .pth
// path. A torch.save archive (torch/serialization.py, _save) is a zip with one top folder
// (the file stem, or "archive" when saved to a buffer; PyTorch 2.x always uses "archive"):
//   <top>/data.pkl      the pickled object, tensors as persistent ids into ...
//   <top>/data/<key>    ... one raw little-endian storage per key
//   <top>/byteorder     "little" or "big" (PyTorch >= 1.10; absent means little)
//   <top>/version       serialization version
#include "io/state_dict.h"

#include <map>

#include "core/error.h"
#include "core/files.h"
#include "io/pickle.h"
#include "io/safetensors.h"
#include "io/zip.h"

namespace normlab::io {
namespace {

using Kind = PickleValue::Kind;

// Rebuilt tensors may not exceed this multiple of the file size (plus kTensorSlack): views
// only ever select from storages, so a legitimate state dict stays within 1x; the margin
// admits the odd expanded (zero-stride) tensor.
constexpr uint64_t kTensorBudgetFactor = 4;
constexpr uint64_t kTensorSlack = uint64_t{16} << 20;
// Checkpoint keys that wrap a state dict (torchvision references, timm, Lightning).
constexpr const char* kWrapperKeys[] = {"state_dict", "model"};
constexpr const char* kSaveHint =
    "save a state dict: torch.save(model.state_dict(), path) (tensors only)";

bool all_tensors(const PickleValue& dict) {
  for (const auto& [k, v] : *dict.dict) {
    if (v.kind != Kind::kTensor) return false;
  }
  return true;
}

// The entries of a dict of tensors; `prefix` names the dict in errors ("model." or "").
void take_tensors(const PickleValue& dict, const std::string& path, const std::string& prefix,
                  StateDict& out) {
  for (const auto& [k, v] : *dict.dict) {
    if (k.kind != Kind::kString) {
      throw Error(path, "state dict key of type " + k.type_name() + " (expected str)", kSaveHint);
    }
    if (v.kind != Kind::kTensor) {
      throw Error(path, "entry '" + prefix + k.str + "' is a " + v.type_name() + ", not a tensor",
                  kSaveHint);
    }
    out.items.emplace_back(k.str, v.tensor);
  }
}

StateDict to_state_dict(const PickleValue& root, const std::string& path) {
  if (root.kind != Kind::kDict) {
    throw Error(path, "holds a " + root.type_name() + ", not a dict of tensors", kSaveHint);
  }
  StateDict out;
  if (all_tensors(root)) {
    take_tensors(root, path, "", out);
    return out;
  }
  // A checkpoint: exactly one wrapper key holding a dict; the other entries are ignored.
  const PickleValue* inner = nullptr;
  std::string inner_key;
  for (const char* w : kWrapperKeys) {
    for (const auto& [k, v] : *root.dict) {
      if (k.kind == Kind::kString && k.str == w && v.kind == Kind::kDict) {
        if (inner != nullptr) {
          throw Error(path,
                      "checkpoint has both '" + inner_key + "' and '" + w +
                          "' dicts; cannot tell which holds the weights",
                      kSaveHint);
        }
        inner = &v;
        inner_key = w;
      }
    }
  }
  if (inner == nullptr) {
    take_tensors(root, path, "", out);  // throws, naming the first non-tensor entry
    return out;
  }
  take_tensors(*inner, path, inner_key + ".", out);
  std::string ignored;
  for (const auto& [k, v] : *root.dict) {
    if (k.kind == Kind::kString && k.str == inner_key) continue;
    if (!ignored.empty()) ignored += ",";
    ignored += k.kind == Kind::kString ? k.str : "<" + k.type_name() + ">";
  }
  out.metadata["normlab.unwrapped"] = inner_key;
  if (!ignored.empty()) out.metadata["normlab.ignored"] = ignored;
  return out;
}

StateDict read_pth(std::vector<uint8_t> bytes, const std::string& path) {
  const uint64_t file_size = bytes.size();
  const ZipReader zip(std::move(bytes), path);
  const ZipEntry* pkl = nullptr;
  const std::string suffix = "/data.pkl";
  for (const auto& e : zip.entries()) {
    const size_t slash = e.name.find('/');
    if (e.name.size() > suffix.size() && slash == e.name.size() - suffix.size() &&
        e.name.compare(slash, suffix.size(), suffix) == 0) {
      if (pkl != nullptr) {
        throw Error(path, "zip archive has two pickles ('" + pkl->name + "' and '" + e.name + "')",
                    "not a torch.save file");
      }
      pkl = &e;
    }
  }
  if (pkl == nullptr) {
    throw Error(path, "zip archive has no <folder>/data.pkl, so it was not written by torch.save",
                kSaveHint);
  }
  const std::string top = pkl->name.substr(0, pkl->name.size() - suffix.size());
  if (const ZipEntry* order = zip.find(top + "/byteorder")) {
    const auto b = zip.read(*order);
    if (std::string(b.begin(), b.end()) != "little") {
      throw Error(
          path,
          "storages are not little-endian (byteorder '" + std::string(b.begin(), b.end()) + "')",
          "re-save the file on a little-endian machine");
    }
  }
  const auto pickle_bytes = zip.read(*pkl);

  std::map<std::string, torch::Tensor> storages;  // tensors sharing a storage read it once
  UnpickleOptions o;
  o.name = path + " (" + pkl->name + ")";
  o.tensor_byte_budget = kTensorBudgetFactor * file_size + kTensorSlack;
  o.load_storage = [&](const std::string& key, torch::ScalarType dtype, int64_t numel) {
    const std::string entry = top + "/data/" + key;
    auto it = storages.find(key);
    if (it != storages.end()) {
      if (it->second.scalar_type() != dtype || it->second.numel() != numel) {
        throw Error(path, "storage '" + entry + "' is referenced with two different types");
      }
      return it->second;
    }
    const ZipEntry* e = zip.find(entry);
    if (e == nullptr) throw Error(path, "storage entry '" + entry + "' is missing", kSaveHint);
    uint64_t expect = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(numel), element_size(dtype), &expect) ||
        e->uncompressed_size != expect) {
      throw Error(path,
                  "storage entry '" + entry + "' has " + std::to_string(e->uncompressed_size) +
                      " bytes, expected " + std::to_string(numel) + " x " +
                      std::to_string(element_size(dtype)),
                  "the file is damaged; save it again");
    }
    torch::Tensor t = torch::empty({numel}, torch::dtype(dtype));
    zip.read_into(*e, static_cast<uint8_t*>(t.data_ptr()));
    storages.emplace(key, t);
    return t;
  };
  const PickleValue root = unpickle(pickle_bytes.data(), pickle_bytes.size(), o);
  return to_state_dict(root, path);
}

// torch.save before PyTorch 1.6 (or with _use_new_zipfile_serialization=False) starts with a
// pickled magic number: PROTO 2, LONG1 (torch/serialization.py, MAGIC_NUMBER).
bool is_legacy_pth(const std::vector<uint8_t>& b) {
  return b.size() >= 3 && b[0] == 0x80 && b[1] == 0x02 && b[2] == 0x8a;
}

}  // namespace

const torch::Tensor* StateDict::find(const std::string& name) const {
  for (const auto& [n, t] : items) {
    if (n == name) return &t;
  }
  return nullptr;
}

StateDict load_state_dict(const std::string& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  if (looks_like_zip(bytes)) return read_pth(std::move(bytes), path);
  if (bytes.size() >= 9 && bytes[8] == '{') return parse_safetensors(bytes, path);
  if (is_legacy_pth(bytes)) {
    throw Error(path, "legacy (pre-PyTorch 1.6, non-zip) torch.save format is not supported",
                "re-save it in Python: torch.save(torch.load(path), new_path)");
  }
  throw Error(path, "neither a PyTorch .pth (zip) archive nor a safetensors file",
              "expected torch.save(model.state_dict(), path) or a .safetensors file");
}

void save_safetensors(const std::string& path, const StateDict& dict) {
  const auto bytes = encode_safetensors(dict);
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace normlab::io
