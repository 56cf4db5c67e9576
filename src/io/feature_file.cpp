// Feature file writer and memory-mapped reader (layout in feature_file.h).
#include "io/feature_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "core/error.h"
#include "core/files.h"
#include "core/runtime.h"

namespace normlab::io {

// fp16 elements are written and mapped in host byte order; the format says little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "feature files assume a little-endian host");

namespace {

using ordered_json = nlohmann::ordered_json;

constexpr char kMagic[] = "NLFEAT";  // followed by the two-digit version
constexpr char kVersion[] = "01";
constexpr uint64_t kPreambleBytes = 16;  // magic + version (8) and the header size (8)
// Data alignment: a cache line, and enough for any vector load on a row.
constexpr uint64_t kDataAlign = 64;
// A key is a short JSON text; a larger header means a damaged size field.
constexpr uint64_t kMaxHeaderBytes = 16u << 20;
constexpr size_t kSha256HexDigits = 64;
constexpr double kHalfMax = 65504.0;  // largest finite IEEE 754 binary16 value
constexpr size_t kHashChunk = 4u << 20;
constexpr const char* kRebuildHint = "delete it; it will be rebuilt";

Error bad_feature_file(const std::string& path, const std::string& problem) {
  return Error(path, "invalid feature file: " + problem, kRebuildHint);
}

// Bytes as text, with non-printable ones escaped, for quoting a damaged file's magic.
std::string printable(const uint8_t* p, size_t n) {
  std::string out = "'";
  for (size_t i = 0; i < n; ++i) {
    if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\'') {
      out += static_cast<char>(p[i]);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", p[i]);
      out += buf;
    }
  }
  return out + "'";
}

std::string shape_text(const std::vector<int64_t>& shape) {
  return c10::str(c10::IntArrayRef(shape));
}

// "[B, 320, 7, 7]": the shape write() expects.
std::string batch_shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[B";
  for (int64_t d : shape) out += ", " + std::to_string(d);
  return out + "]";
}

// Elements per row (per item and view) and bytes of data; throws via `fail` on a bad spec.
template <class Fail>
void check_spec(const FeatureFileSpec& spec, uint64_t& row_elements, uint64_t& data_bytes,
                Fail fail) {
  if (spec.items < 0) fail("items must be at least 0, got " + std::to_string(spec.items));
  if (spec.views < 1) fail("views must be at least 1, got " + std::to_string(spec.views));
  row_elements = 1;
  for (int64_t d : spec.feature_shape) {
    if (d < 1) fail("feature shape " + shape_text(spec.feature_shape) + " has a size below 1");
    if (__builtin_mul_overflow(row_elements, static_cast<uint64_t>(d), &row_elements)) {
      fail("feature shape " + shape_text(spec.feature_shape) + " overflows");
    }
  }
  if (__builtin_mul_overflow(row_elements, uint64_t{2}, &data_bytes) ||
      __builtin_mul_overflow(data_bytes, static_cast<uint64_t>(spec.items), &data_bytes) ||
      __builtin_mul_overflow(data_bytes, static_cast<uint64_t>(spec.views), &data_bytes) ||
      data_bytes > static_cast<uint64_t>(INT64_MAX)) {
    fail("the data size overflows (items " + std::to_string(spec.items) + ", views " +
         std::to_string(spec.views) + ", shape " + shape_text(spec.feature_shape) + ")");
  }
}

// The JSON header, space-padded so that the data after it starts at a multiple of kDataAlign.
// Its size does not depend on `sha` (always 64 hex digits), so the writer can reserve it.
std::string header_text(const std::string& path, const FeatureFileSpec& spec,
                        const std::string& sha) {
  ordered_json j = {{"key", spec.key},     {"items", spec.items},
                    {"views", spec.views}, {"shape", spec.feature_shape},
                    {"dtype", "f16"},      {"data_sha256", sha}};
  std::string text;
  try {
    text = j.dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(path, std::string("the feature file key is not valid UTF-8: ") + e.what());
  }
  text.append((kDataAlign - (kPreambleBytes + text.size()) % kDataAlign) % kDataAlign, ' ');
  return text;
}

// pwrite/pread the whole range, retrying short transfers; returns 0 or an errno value.
int pwrite_all(int fd, const void* data, size_t size, uint64_t offset) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return 0;
}

int pread_all(int fd, void* data, size_t size, uint64_t offset) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::pread(fd, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;  // the file is shorter than it was made
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return 0;
}

std::string disk_hint(int err) {
  return err == ENOSPC ? "free disk space (or point NORMLAB_CACHE elsewhere) and run again" : "";
}

}  // namespace

std::string feature_file_name(const std::string& key) {
  return sha256_hex(key).substr(0, 32) + ".nlfeat";
}

// ---------------------------------------------------------------------------------------------
// Writer

FeatureFileWriter::FeatureFileWriter(std::string path, FeatureFileSpec spec)
    : path_(std::move(path)), spec_(std::move(spec)) {
  uint64_t row_elements = 0;
  uint64_t data_bytes = 0;
  check_spec(spec_, row_elements, data_bytes, [&](const std::string& problem) {
    throw Error(path_, "cannot write a feature file: " + problem);
  });
  row_bytes_ = row_elements * 2;
  data_offset_ =
      kPreambleBytes + header_text(path_, spec_, std::string(kSha256HexDigits, '0')).size();

  partial_ = path_ + ".partial-" + std::to_string(::getpid());
  fd_ = ::open(partial_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    const int err = errno;
    const std::string partial = std::exchange(partial_, std::string());  // nothing to remove
    throw Error(path_, "cannot create " + partial + ": " + std::strerror(err),
                "check that the folder exists and is writable");
  }
  // Reserve the whole file now, so that a full disk fails before any feature is computed.
  // Zeros in the magic mark the file as unfinished until commit() writes the header.
  const uint64_t total = data_offset_ + data_bytes;
  int err = ::posix_fallocate(fd_, 0, static_cast<off_t>(total));
  if (err != 0 && err != ENOSPC) {  // not supported by this file system: a sparse file will do
    err = ::ftruncate(fd_, static_cast<off_t>(total)) == 0 ? 0 : errno;
  }
  if (err != 0) {
    ::close(fd_);
    ::unlink(partial_.c_str());
    throw Error(path_, "cannot reserve " + std::to_string(total) + " bytes: " + std::strerror(err),
                disk_hint(err));
  }
  written_.assign(static_cast<size_t>(spec_.views * spec_.items), 0);
}

FeatureFileWriter::FeatureFileWriter(FeatureFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      partial_(std::exchange(other.partial_, std::string())),
      spec_(std::move(other.spec_)),
      fd_(std::exchange(other.fd_, -1)),
      data_offset_(other.data_offset_),
      row_bytes_(other.row_bytes_),
      written_(std::move(other.written_)),
      committed_(std::exchange(other.committed_, true)) {}

FeatureFileWriter::~FeatureFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !partial_.empty()) ::unlink(partial_.c_str());
}

void FeatureFileWriter::write(int64_t view, int64_t first, const torch::Tensor& features) {
  require(!committed_ && fd_ >= 0, path_, "write() after commit() (or after a failed commit)");
  require(features.defined() && c10::isFloatingType(features.scalar_type()), path_,
          "features must be a floating-point tensor");
  const auto& shape = spec_.feature_shape;
  const bool shape_ok = features.dim() == static_cast<int64_t>(shape.size()) + 1 &&
                        std::equal(shape.begin(), shape.end(), features.sizes().begin() + 1);
  require(shape_ok, path_,
          "features have shape " + c10::str(features.sizes()) + ", expected " +
              batch_shape_text(shape));
  const int64_t count = features.size(0);
  require(
      view >= 0 && view < spec_.views, path_,
      "view " + std::to_string(view) + " is out of range [0, " + std::to_string(spec_.views) + ")");
  require(first >= 0 && first + count <= spec_.items, path_,
          "rows [" + std::to_string(first) + ", " + std::to_string(first + count) +
              ") are out of range [0, " + std::to_string(spec_.items) + ")");
  const size_t row0 = static_cast<size_t>(view * spec_.items + first);
  for (int64_t i = 0; i < count; ++i) {
    require(written_[row0 + static_cast<size_t>(i)] == 0, path_,
            "view " + std::to_string(view) + ", item " + std::to_string(first + i) +
                " is written twice");
  }
  if (count == 0) return;

  // Checked in the source dtype, before rounding: fp16 turns |x| > 65504 into inf. NaN fails
  // the comparison too. One host sync per write; features are written once.
  const double max_abs = features.detach().abs().max().item<double>();
  if (!(max_abs <= kHalfMax)) {
    throw Error(path_,
                "features of view " + std::to_string(view) + ", items [" + std::to_string(first) +
                    ", " + std::to_string(first + count) + ") hold |x| = " +
                    std::to_string(max_abs) + ", which fp16 cannot store (largest: 65504)",
                "the frozen prefix's outputs exceed fp16's range; run without the feature cache");
  }
  // Converted on the features' device, so that half the bytes cross to the host.
  const torch::Tensor half =
      features.detach().to(torch::kFloat16).to(torch::kCPU).contiguous();  // (B, *shape)
  const uint64_t offset = data_offset_ + static_cast<uint64_t>(row0) * row_bytes_;
  const int err = pwrite_all(fd_, half.data_ptr(), static_cast<size_t>(count) * row_bytes_, offset);
  if (err != 0) {
    throw Error(path_, "cannot write " + partial_ + ": " + std::strerror(err), disk_hint(err));
  }
  std::fill_n(written_.begin() + static_cast<std::ptrdiff_t>(row0), count, uint8_t{1});
}

void FeatureFileWriter::commit() {
  require(!committed_ && fd_ >= 0, path_, "commit() called twice (or after a failed commit)");
  const auto missing = std::count(written_.begin(), written_.end(), uint8_t{0});
  if (missing > 0) {
    const auto first = static_cast<int64_t>(
        std::find(written_.begin(), written_.end(), uint8_t{0}) - written_.begin());
    throw Error(path_,
                "cannot commit: " + std::to_string(missing) + " of " +
                    std::to_string(written_.size()) + " rows were never written (the first: view " +
                    std::to_string(first / spec_.items) + ", item " +
                    std::to_string(first % spec_.items) + ")",
                "write every item of every view before commit()");
  }
  auto fail = [&](const std::string& what, int err) {
    throw Error(path_, what + " " + partial_ + ": " + std::strerror(err), disk_hint(err));
  };

  // The digest of the data as it is on disk, read back in order (rows came in any order).
  Sha256 sha;
  std::vector<uint8_t> chunk(kHashChunk);
  const uint64_t data_bytes = static_cast<uint64_t>(written_.size()) * row_bytes_;
  for (uint64_t at = 0; at < data_bytes;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kHashChunk, data_bytes - at));
    if (const int err = pread_all(fd_, chunk.data(), n, data_offset_ + at))
      fail("cannot read", err);
    sha.update(chunk.data(), n);
    at += n;
  }
  const std::string header = header_text(path_, spec_, sha.hex());
  if (kPreambleBytes + header.size() != data_offset_) {
    throw std::logic_error("feature file header changed size: the digest must be 64 digits");
  }

  std::string preamble = std::string(kMagic) + kVersion;
  for (int i = 0; i < 8; ++i) preamble += static_cast<char>(header.size() >> (8 * i));
  preamble += header;
  if (const int err = pwrite_all(fd_, preamble.data(), preamble.size(), 0))
    fail("cannot write", err);
  if (::fsync(fd_) != 0) fail("cannot fsync", errno);
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) fail("cannot close", errno);
  if (std::rename(partial_.c_str(), path_.c_str()) != 0) fail("cannot rename", errno);
  committed_ = true;
}

// ---------------------------------------------------------------------------------------------
// Reader

struct FeatureFile::Mapping {
  void* addr = nullptr;
  size_t size = 0;

  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (addr != nullptr) ::munmap(addr, size);
  }
  const uint8_t* bytes() const { return static_cast<const uint8_t*>(addr); }
};

FeatureFile FeatureFile::open(const std::string& path, const std::string& expected_key) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw Error(path, std::string("cannot open feature file: ") + std::strerror(err),
                err == ENOENT ? "the feature cache builds it on first use" : kRebuildHint);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(path, std::string("cannot stat feature file: ") + std::strerror(err));
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < kPreambleBytes) {
    ::close(fd);
    throw bad_feature_file(path, "only " + std::to_string(size) + " bytes, shorter than the " +
                                     std::to_string(kPreambleBytes) +
                                     "-byte preamble (truncated?)");
  }
  auto map = std::make_shared<Mapping>();
  void* addr = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
  const int map_err = errno;
  ::close(fd);  // the mapping keeps the file open
  if (addr == MAP_FAILED) {
    throw Error(path, std::string("cannot map feature file: ") + std::strerror(map_err));
  }
  map->addr = addr;
  map->size = static_cast<size_t>(size);
  const uint8_t* p = map->bytes();

  if (std::memcmp(p, kMagic, 6) != 0) {
    throw bad_feature_file(path, "not a normlab feature file (it starts with " + printable(p, 8) +
                                     ", expected 'NLFEAT01')");
  }
  if (std::memcmp(p + 6, kVersion, 2) != 0) {
    throw Error(path,
                "feature file version " + printable(p + 6, 2) +
                    " is not supported; this build reads version '" + kVersion + "'",
                kRebuildHint);
  }
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | p[8 + i];
  if (header_bytes > size - kPreambleBytes || header_bytes > kMaxHeaderBytes) {
    throw bad_feature_file(path, "header size " + std::to_string(header_bytes) +
                                     " exceeds the file (" + std::to_string(size) +
                                     " bytes; truncated?)");
  }
  const uint64_t data_offset = kPreambleBytes + header_bytes;
  if (data_offset % kDataAlign != 0) {
    throw bad_feature_file(path, "data offset " + std::to_string(data_offset) +
                                     " is not a multiple of " + std::to_string(kDataAlign));
  }

  ordered_json j;
  try {
    const char* text = reinterpret_cast<const char*>(p + kPreambleBytes);
    j = ordered_json::parse(text, text + header_bytes);
  } catch (const nlohmann::json::exception& e) {
    throw bad_feature_file(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw bad_feature_file(path, "header is not a JSON object");
  for (const auto& [k, v] : j.items()) {
    if (k != "key" && k != "items" && k != "views" && k != "shape" && k != "dtype" &&
        k != "data_sha256") {
      throw bad_feature_file(path, "unknown header field '" + k + "'");
    }
  }
  auto count_field = [&](const char* name) {
    if (!j.contains(name) || !j[name].is_number_unsigned() ||
        j[name].get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      throw bad_feature_file(path,
                             std::string("header field '") + name + "' is missing or not a count");
    }
    return j[name].get<int64_t>();
  };
  FeatureFileSpec spec;
  if (!j.contains("key") || !j["key"].is_string()) {
    throw bad_feature_file(path, "header field 'key' is missing or not a string");
  }
  spec.key = j["key"].get<std::string>();
  spec.items = count_field("items");
  spec.views = count_field("views");
  if (!j.contains("shape") || !j["shape"].is_array()) {
    throw bad_feature_file(path, "header field 'shape' is missing or not an array");
  }
  for (const auto& d : j["shape"]) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      throw bad_feature_file(path, "header shape " + j["shape"].dump() + " holds a non-size");
    }
    spec.feature_shape.push_back(d.get<int64_t>());
  }
  if (!j.contains("dtype") || j["dtype"] != "f16") {
    throw bad_feature_file(path, "header dtype is " +
                                     (j.contains("dtype") ? j["dtype"].dump() : "missing") +
                                     ", expected \"f16\"");
  }
  const auto& digest = j.contains("data_sha256") ? j["data_sha256"] : ordered_json();
  if (!digest.is_string() || digest.get<std::string>().size() != kSha256HexDigits ||
      digest.get<std::string>().find_first_not_of("0123456789abcdef") != std::string::npos) {
    throw bad_feature_file(path,
                           "header field 'data_sha256' is missing or not 64 lowercase hex digits");
  }
  uint64_t row_elements = 0;
  uint64_t data_bytes = 0;
  check_spec(spec, row_elements, data_bytes, [&](const std::string& problem) {
    throw bad_feature_file(path, "header: " + problem);
  });

  if (spec.key != expected_key) {
    throw Error(
        path,
        "key mismatch: the file was built for key " + spec.key + ", expected key " + expected_key,
        kRebuildHint);
  }
  const uint64_t expected_size = data_offset + data_bytes;
  if (size != expected_size) {
    throw bad_feature_file(path, std::to_string(size) + " bytes, but its header describes " +
                                     std::to_string(expected_size) +
                                     (size < expected_size ? " (truncated)" : " (trailing bytes)"));
  }
  Sha256 sha;
  sha.update(p + data_offset, static_cast<size_t>(data_bytes));
  const std::string actual = sha.hex();
  if (actual != digest.get<std::string>()) {
    throw bad_feature_file(path, "the data's SHA-256 is " + actual + " but the header records " +
                                     digest.get<std::string>() + " (the data is corrupt)");
  }

  FeatureFile file;
  file.path_ = path;
  file.spec_ = std::move(spec);
  file.map_ = std::move(map);
  file.data_offset_ = data_offset;
  return file;
}

torch::Tensor FeatureFile::rows() const {
  int64_t row_elements = 1;
  for (int64_t d : spec_.feature_shape) row_elements *= d;
  // The deleter holds the mapping, so tensors over it stay valid after this object is gone.
  void* data = const_cast<uint8_t*>(map_->bytes() + data_offset_);
  return torch::from_blob(
      data, {spec_.views * spec_.items, row_elements}, [map = map_](void*) {},
      torch::TensorOptions().dtype(torch::kFloat16));
}

torch::Tensor FeatureFile::view_tensor(int64_t view) const {
  require(
      view >= 0 && view < spec_.views, path_,
      "view " + std::to_string(view) + " is out of range [0, " + std::to_string(spec_.views) + ")");
  std::vector<int64_t> sizes = {spec_.items};
  sizes.insert(sizes.end(), spec_.feature_shape.begin(), spec_.feature_shape.end());
  return rows().narrow(0, view * spec_.items, spec_.items).view(sizes);  // (items, *shape)
}

torch::Tensor FeatureFile::gather(const torch::Tensor& items, const torch::Tensor& views,
                                  torch::Device device) const {
  auto index = [&](const torch::Tensor& t, const char* name) {
    require(t.defined() && t.dim() == 1 && t.device().is_cpu() &&
                c10::isIntegralType(t.scalar_type(), /*includeBool=*/false),
            path_,
            std::string("gather: ") + name + " must be a 1-D integer CPU tensor, got " +
                (t.defined() ? c10::str(t.sizes(), " ", t.scalar_type(), " on ", t.device())
                             : std::string("an undefined tensor")));
    return t.to(torch::kLong).contiguous();
  };
  const torch::Tensor item = index(items, "items");  // (B)
  const torch::Tensor view = index(views, "views");  // (B)
  require(item.size(0) == view.size(0), path_,
          "gather: items has " + std::to_string(item.size(0)) + " entries but views has " +
              std::to_string(view.size(0)));
  auto check_range = [&](const torch::Tensor& t, int64_t end, const char* name) {
    const torch::Tensor outside = (t < 0).logical_or(t >= end);
    if (outside.any().item<bool>()) {
      const int64_t at = outside.nonzero()[0][0].item<int64_t>();
      throw Error(path_, std::string("gather: ") + name + "[" + std::to_string(at) +
                             "] = " + std::to_string(t[at].item<int64_t>()) +
                             " is out of range [0, " + std::to_string(end) + ")");
    }
  };
  check_range(item, spec_.items, "items");
  check_range(view, spec_.views, "views");

  std::vector<int64_t> sizes = {item.size(0)};
  sizes.insert(sizes.end(), spec_.feature_shape.begin(), spec_.feature_shape.end());
  // One index_select over all rows (view-major: row = view * items + item), then fp16 crosses
  // to the device and is widened there.
  const torch::Tensor out = rows().index_select(0, view * spec_.items + item);  // (B, row) fp16
  return to_device(out.view(sizes), device).to(torch::kFloat32);                // (B, *shape)
}

}  // namespace normlab::io
