#include "data/fetch.h"

#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "data/registry.h"
#include "io/archive.h"
#include "io/cache.h"
#include "io/download.h"

namespace normlab::data {
namespace {

namespace fs = std::filesystem;

struct RemoteFile {
  std::string name;
  // SHA-256 prefix or full hash; "" when only an MD5 is published (normlab checks SHA-256
  // only). Those datasets are verified by loading them after extraction: the CIFAR/IDX
  // readers refuse truncated files and out-of-range labels, and the record counts are checked.
  std::string sha256;
};

struct DatasetFiles {
  std::string name;      // registry name
  std::string base_url;  // directory URL; each file name is appended
  std::vector<RemoteFile> files;
  bool extract = false;    // files are archives to unpack into the dataset directory
  int64_t train_size = 0;  // examples per split in the official distribution
  int64_t test_size = 0;
};

// Sources. The publishers give MD5s, not SHA-256s; they are recorded here for reference
// (`md5sum` checks a file by hand) and the files are verified by loading them instead.
const std::vector<DatasetFiles>& sources() {
  static const std::vector<DatasetFiles> table = {
      // https://www.cs.toronto.edu/~kriz/cifar.html ("CIFAR-10 binary version",
      // md5 c32a1d4ab5d03f1284b67883e8d87530). Extracts to cifar-10-batches-bin/.
      {"cifar10",
       "https://www.cs.toronto.edu/~kriz/",
       {{"cifar-10-binary.tar.gz", ""}},
       true,
       50000,
       10000},
      // Same page ("CIFAR-100 binary version", md5 03b5dce01913d631647c71ecec9e9cb8).
      // Extracts to cifar-100-binary/.
      {"cifar100",
       "https://www.cs.toronto.edu/~kriz/",
       {{"cifar-100-binary.tar.gz", ""}},
       true,
       50000,
       10000},
      // The S3 mirror torchvision uses (torchvision/datasets/mnist.py `mirrors`; the original
      // yann.lecun.com site often refuses downloads). MD5s from the same file: train-images
      // f68b3c2dcbeaaa9fbdd348bbdeb94873, train-labels d53e105ee54ea40749a09fcbcd1e9432,
      // t10k-images 9fb629c4189551a2d022fa330f9573f3, t10k-labels ec29112dd5afa0611ce80d1b7f02629c.
      // The loader reads the .gz files directly, so they are not extracted.
      {"mnist",
       "https://ossci-datasets.s3.amazonaws.com/mnist/",
       {{"train-images-idx3-ubyte.gz", ""},
        {"train-labels-idx1-ubyte.gz", ""},
        {"t10k-images-idx3-ubyte.gz", ""},
        {"t10k-labels-idx1-ubyte.gz", ""}},
       false,
       60000,
       10000},
      // https://github.com/zalandoresearch/fashion-mnist#get-the-data (MD5s in its README:
      // train-images 8d4fb7e6c68d591d4c3dfef9ec88bf0d, train-labels
      // 25c81989df183df01b3e8a0aad5dffbe, t10k-images bef4ecab320f06d8554ea6380940ec79,
      // t10k-labels bb300cfdad3c16e7a12a480ee83cd310).
      {"fashion-mnist",
       "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
       {{"train-images-idx3-ubyte.gz", ""},
        {"train-labels-idx1-ubyte.gz", ""},
        {"t10k-images-idx3-ubyte.gz", ""},
        {"t10k-labels-idx1-ubyte.gz", ""}},
       false,
       60000,
       10000},
  };
  return table;
}

const DatasetFiles& find_source(const std::string& name) {
  for (const auto& s : sources()) {
    if (s.name == name) return s;
  }
  std::string known;
  for (const auto& n : fetchable_datasets()) known += (known.empty() ? "" : ", ") + n;
  throw Error("dataset '" + name + "'", "cannot be fetched", "fetchable datasets: " + known);
}

// Loads both splits from `dir`; throws load_dataset's Error when they do not load.
FetchResult load_both(const std::string& name, const std::string& dir) {
  DatasetSource src;
  src.name = name;
  src.path = dir;
  FetchResult r;
  r.dir = dir;
  src.train = true;
  r.train_size = load_dataset(src).size();
  src.train = false;
  r.test_size = load_dataset(src).size();
  return r;
}

}  // namespace

std::vector<std::string> fetchable_datasets() {
  std::vector<std::string> names;
  for (const auto& s : sources()) names.push_back(s.name);
  return names;
}

std::string default_fetch_dir(const std::string& name) {
  return (fs::path(io::cache_dir()) / "datasets" / name).string();
}

std::string locate_dataset(const std::string& name) {
  for (const auto& dir : default_dataset_dirs(name)) {
    DatasetSource src;
    src.name = name;
    src.path = dir;
    src.train = false;  // the smaller split: enough to know the files are there and load
    try {
      load_dataset(src);
      return dir;
    } catch (const Error&) {
    }
  }
  return "";
}

FetchResult fetch_dataset(const std::string& name, const std::string& dest_dir) {
  FetchOptions options;
  options.dest_dir = dest_dir;
  return fetch_dataset(name, options);
}

FetchResult fetch_dataset(const std::string& name, const FetchOptions& options) {
  const DatasetFiles& source = find_source(name);
  const std::string dir = options.dest_dir.empty() ? default_fetch_dir(name) : options.dest_dir;

  // Already there: nothing to download. Any load failure means "fetch it".
  try {
    FetchResult r = load_both(name, dir);
    r.already_present = true;
    return r;
  } catch (const Error&) {
  }

  std::string base = options.mirror.empty() ? source.base_url : options.mirror;
  if (!base.empty() && base.back() != '/') base += '/';
  for (const auto& f : source.files) {
    const std::string path = (fs::path(dir) / f.name).string();
    io::ensure_file(base + f.name, f.sha256, path, options.progress);
    if (source.extract) {
      log::info("extracting ", path);
      io::extract_archive(path, dir);
      // The extracted files are what the loader reads; the archive would double the space.
      std::error_code ec;
      fs::remove(path, ec);
      fs::remove(path + ".sha256", ec);
    }
  }

  FetchResult r;
  try {
    r = load_both(name, dir);
  } catch (const Error& e) {
    throw Error(
        "dataset '" + name + "'",
        "the downloaded files in " + dir + " do not load:\n    " + e.what(),
        "delete " + dir + " and fetch again; if it fails again the download source " + "changed");
  }
  // Official distributions have fixed sizes; a mirror with other sizes is flagged, not refused
  // (tests and subsets use smaller files).
  if (r.train_size != source.train_size || r.test_size != source.test_size) {
    log::warn("dataset '", name, "': ", r.train_size, " train / ", r.test_size,
              " test examples; the official distribution has ", source.train_size, " / ",
              source.test_size);
  }
  return r;
}

}  // namespace normlab::data
