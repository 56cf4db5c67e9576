// A feature file: the frozen prefix's outputs for every image (and every flip view), stored
// once as fp16 and memory-mapped by later runs, epochs and studies (the feature cache). This
// file is the storage layer only; the caller computes the key and the features.
//
// Layout (all integers little-endian):
//   8 bytes   magic "NLFEAT" + two-digit version "01"
//   8 bytes   N, u64: the header size
//   N bytes   JSON {"key", "items", "views", "shape", "dtype": "f16", "data_sha256"},
//             space-padded so that the data starts at a multiple of 64 bytes
//   rest      data, view-major: [views][items][*shape] fp16; nothing after it.
// The header's size is fixed when the writer starts (the digest is always 64 hex digits), so
// the writer reserves it, writes the data rows wherever they belong, and writes the header
// last, once the data's SHA-256 is known. Until then the file starts with zeros, which no
// reader accepts; and it lives at PATH.partial-<pid> until commit() renames it to PATH.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace normlab::io {

struct FeatureFileSpec {
  // The caller's identity string (a JSON text: weights hash, cut point, preprocessing, data
  // hash); open() refuses a file whose key differs.
  std::string key;
  int64_t items = 0;                   // images
  int64_t views = 1;                   // e.g. 2 = original + flipped
  std::vector<int64_t> feature_shape;  // per item, e.g. {320, 7, 7}
};

// "<first 32 hex digits of sha256(key)>.nlfeat": the file name for a key in a cache folder.
std::string feature_file_name(const std::string& key);

// Writes a feature file in any row order. The file is preallocated on construction, so a full
// disk fails before any feature is computed. The destructor removes an uncommitted file.
class FeatureFileWriter {
 public:
  // Throws Error for an invalid spec or when PATH.partial-<pid> cannot be created.
  FeatureFileWriter(std::string path, FeatureFileSpec spec);
  ~FeatureFileWriter();
  FeatureFileWriter(FeatureFileWriter&& other) noexcept;
  FeatureFileWriter& operator=(FeatureFileWriter&&) = delete;
  FeatureFileWriter(const FeatureFileWriter&) = delete;
  FeatureFileWriter& operator=(const FeatureFileWriter&) = delete;

  // features: (B, *feature_shape), any floating dtype, any device; stored as fp16 at rows
  // [first, first + B) of `view`. Throws Error for a wrong shape, rows out of range or already
  // written, or values that are not finite in fp16 (|x| > 65504 overflows).
  void write(int64_t view, int64_t first, const torch::Tensor& features);

  // Checks that every row of every view was written, records the data's SHA-256 in the header,
  // fsyncs and renames the file to its path. Throws Error naming the first missing row.
  void commit();

  const std::string& path() const { return path_; }
  const FeatureFileSpec& spec() const { return spec_; }

 private:
  std::string path_;
  std::string partial_;
  FeatureFileSpec spec_;
  int fd_ = -1;
  uint64_t data_offset_ = 0;
  uint64_t row_bytes_ = 0;
  std::vector<uint8_t> written_;  // (views * items): 1 once a row is written
  bool committed_ = false;
};

// A committed feature file, memory-mapped read-only. Copies share the mapping; tensors from
// view_tensor() keep it alive too, so the file may be dropped while they are in use.
class FeatureFile {
 public:
  // Verifies the magic and version, that the header is consistent, that its key equals
  // `expected_key`, the file size, and the SHA-256 of the data (one streamed pass over the
  // map). Every failure is an Error naming the path, with the hint to delete the file.
  static FeatureFile open(const std::string& path, const std::string& expected_key);

  const FeatureFileSpec& spec() const { return spec_; }
  const std::string& path() const { return path_; }

  // items (B) and views (B): integer CPU tensors, one (item, view) pair per row.
  // Returns (B, *feature_shape) float32 on `device`. Throws Error for an index out of range.
  torch::Tensor gather(const torch::Tensor& items, const torch::Tensor& views,
                       torch::Device device) const;

  // (items, *feature_shape) fp16 CPU tensor over the map, without a copy. Read-only: the map
  // is not writable, so writing to it crashes.
  torch::Tensor view_tensor(int64_t view) const;

 private:
  struct Mapping;
  FeatureFile() = default;
  // All rows as (views * items, row elements) fp16 over the map.
  torch::Tensor rows() const;

  std::string path_;
  FeatureFileSpec spec_;
  std::shared_ptr<const Mapping> map_;
  uint64_t data_offset_ = 0;
};

}  // namespace normlab::io
