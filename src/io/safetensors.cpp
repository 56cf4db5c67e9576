// safetensors reader and writer. Validation follows the reference implementation's
// (safetensors/src/tensor.rs, SafeTensors::read_metadata / Metadata::validate): header size
// within the file and at most 100 MB, offsets tiling the buffer, and byte counts equal to
// numel * element size.
#include "io/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <set>

#include "core/error.h"
#include "io/pickle.h"

namespace normlab::io {
namespace {

using ordered_json = nlohmann::ordered_json;

// safetensors' limit on the header (tensor.rs, MAX_HEADER_SIZE).
constexpr uint64_t kMaxHeaderSize = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

struct DtypeName {
  const char* name;
  torch::ScalarType dtype;
};
constexpr DtypeName kDtypes[] = {
    {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
    {"F64", torch::kFloat64}, {"I64", torch::kInt64},   {"I32", torch::kInt32},
    {"I16", torch::kInt16},   {"I8", torch::kInt8},     {"U8", torch::kUInt8},
    {"BOOL", torch::kBool},
};

Error bad(const std::string& name, const std::string& problem) {
  return Error(name, "invalid safetensors file: " + problem,
               "the file is damaged or truncated; download or convert it again");
}

struct Entry {
  std::string name;
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

Entry parse_entry(const std::string& file, const std::string& tensor, const ordered_json& j) {
  const std::string who = "tensor '" + tensor + "': ";
  if (!j.is_object()) throw bad(file, who + "header entry is not an object");
  for (const auto& [k, v] : j.items()) {
    if (k != "dtype" && k != "shape" && k != "data_offsets") {
      throw bad(file, who + "unknown field '" + k + "'");
    }
  }
  if (!j.contains("dtype") || !j["dtype"].is_string()) {
    throw bad(file, who + "missing or non-string dtype");
  }
  Entry e;
  e.name = tensor;
  const std::string dtype = j["dtype"].get<std::string>();
  const DtypeName* found = nullptr;
  for (const auto& d : kDtypes) {
    if (dtype == d.name) found = &d;
  }
  if (found == nullptr) {
    throw Error(file, who + "dtype '" + dtype + "' is not supported",
                "supported: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL");
  }
  e.dtype = found->dtype;
  if (!j.contains("shape") || !j["shape"].is_array()) throw bad(file, who + "missing shape");
  uint64_t numel = 1;
  for (const auto& d : j["shape"]) {
    if (!d.is_number_unsigned())
      throw bad(file, who + "shape entry " + d.dump() + " is not a size");
    const uint64_t n = d.get<uint64_t>();
    if (n > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, n, &numel)) {
      throw bad(file, who + "shape " + j["shape"].dump() + " overflows");
    }
    e.shape.push_back(static_cast<int64_t>(n));
  }
  const auto& off = j.contains("data_offsets") ? j["data_offsets"] : ordered_json();
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned()) {
    throw bad(file, who + "data_offsets must be [begin, end]");
  }
  e.begin = off[0].get<uint64_t>();
  e.end = off[1].get<uint64_t>();
  uint64_t bytes = 0;
  if (e.end < e.begin || __builtin_mul_overflow(numel, element_size(e.dtype), &bytes) ||
      e.end - e.begin != bytes) {
    throw bad(file, who + "data_offsets " + off.dump() + " hold " +
                        std::to_string(e.end - std::min(e.begin, e.end)) + " bytes but " + dtype +
                        " " + j["shape"].dump() + " needs " +
                        (bytes == 0 && numel != 0 ? std::string("more") : std::to_string(bytes)));
  }
  return e;
}

}  // namespace

std::string safetensors_dtype(torch::ScalarType dtype) {
  for (const auto& d : kDtypes) {
    if (d.dtype == dtype) return d.name;
  }
  throw Error(c10::toString(dtype), "safetensors cannot hold this dtype",
              "convert the tensor to float32 first");
}

StateDict parse_safetensors(const std::vector<uint8_t>& bytes, const std::string& name) {
  if (bytes.size() < 8) {
    throw bad(name,
              "only " + std::to_string(bytes.size()) + " bytes, less than the 8-byte header size");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<size_t>(i)];
  if (n > bytes.size() - 8 || n > kMaxHeaderSize) {
    throw bad(name, "header size " + std::to_string(n) + " exceeds the file (" +
                        std::to_string(bytes.size()) + " bytes)");
  }
  const char* header = reinterpret_cast<const char*>(bytes.data() + 8);
  if (n < 2 || header[0] != '{') throw bad(name, "header does not start with '{'");

  // nlohmann keeps the last of repeated keys; the callback sees every top-level key first.
  std::set<std::string> seen;
  std::string duplicate;
  auto cb = [&](int depth, nlohmann::json::parse_event_t event, ordered_json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 &&
        !seen.insert(parsed.get<std::string>()).second && duplicate.empty()) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  ordered_json j;
  try {
    j = ordered_json::parse(header, header + n, cb);
  } catch (const nlohmann::json::exception& e) {
    throw bad(name, std::string("header is not valid JSON: ") + e.what());
  }
  if (!duplicate.empty()) throw bad(name, "tensor '" + duplicate + "' appears twice in the header");
  if (!j.is_object()) throw bad(name, "header is not a JSON object");

  StateDict out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : j.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object()) throw bad(name, "__metadata__ is not an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) throw bad(name, "__metadata__ value '" + mk + "' is not a string");
        out.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(name, key, value));
  }

  // The tensors must tile the buffer: sorted by offset, each begins where the last ended.
  const uint64_t buffer = bytes.size() - 8 - n;
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t at = 0;
  for (const auto& e : entries) {
    if (e.begin != at) {
      throw bad(name, "tensor '" + e.name + "' starts at byte " + std::to_string(e.begin) +
                          " of the buffer, expected " + std::to_string(at) +
                          (e.begin < at ? " (overlaps the previous tensor)" : " (gap)"));
    }
    if (e.end > buffer) {
      throw bad(name, "tensor '" + e.name + "' ends at byte " + std::to_string(e.end) +
                          " but the buffer has " + std::to_string(buffer) + " bytes (truncated?)");
    }
    at = e.end;
  }
  if (at != buffer) {
    throw bad(name, std::to_string(buffer - at) + " bytes after the last tensor");
  }
  const uint8_t* data = bytes.data() + 8 + n;
  for (const auto& e : entries) {
    torch::Tensor t = torch::empty(e.shape, torch::dtype(e.dtype));
    if (e.end > e.begin) std::memcpy(t.data_ptr(), data + e.begin, e.end - e.begin);
    out.items.emplace_back(e.name, std::move(t));
  }
  return out;
}

std::vector<uint8_t> encode_safetensors(const StateDict& dict) {
  ordered_json header = ordered_json::object();
  if (!dict.metadata.empty()) {
    ordered_json meta = ordered_json::object();
    for (const auto& [k, v] : dict.metadata) meta[k] = v;
    header[kMetadataKey] = meta;
  }
  std::vector<torch::Tensor> tensors;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [tname, tensor] : dict.items) {
    if (tname == kMetadataKey || !seen.insert(tname).second) {
      throw Error("tensor '" + tname + "'", "name is repeated or reserved in a safetensors file");
    }
    if (!tensor.defined()) throw Error("tensor '" + tname + "'", "is undefined");
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    const std::string dtype = safetensors_dtype(t.scalar_type());
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * element_size(t.scalar_type());
    header[tname] = {
        {"dtype", dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    tensors.push_back(std::move(t));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the reference writer aligns the buffer to 8
  std::vector<uint8_t> out(8 + text.size() + offset);
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<uint8_t>(text.size() >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* p = out.data() + 8 + text.size();
  for (const auto& t : tensors) {
    const size_t bytes = static_cast<size_t>(t.numel()) * element_size(t.scalar_type());
    if (bytes > 0) std::memcpy(p, t.data_ptr(), bytes);
    p += bytes;
  }
  return out;
}

}  // namespace normlab::io
