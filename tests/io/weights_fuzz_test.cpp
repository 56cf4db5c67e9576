// Robustness: hundreds of random mutations of a valid .pth, of its pickle, and of a valid
// safetensors file. Loading must succeed or throw normlab::Error / c10::Error; never crash,
// hang, or allocate memory out of proportion to the file. Deterministic (fixed seeds); run
// under ASan/UBSan with -DNORMLAB_SANITIZE=ON to catch out-of-bounds reads.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <random>

#include "core/files.h"
#include "io/pickle.h"
#include "io/state_dict.h"
#include "io/zip.h"
#include "test_files.h"

namespace normlab::io {
namespace {

using testing::Bytes;
using testing::TempDir;

// Mutations per input file: enough to exercise every parser path, under 10 s with ASan.
constexpr int kMutations = 400;

std::string fixture(const std::string& name) {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" / "io" / name)
      .string();
}

long max_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

// One random mutation: byte flips, a truncation, a 2/4/8-byte field set to a huge value (often
// a length), garbage inserted, or a chunk deleted. `hot` biases positions to the region where
// the format keeps its lengths (a zip's central directory at the end, a header at the start).
Bytes mutate(const Bytes& in, std::mt19937_64& rng, size_t hot_begin, size_t hot_end) {
  Bytes b = in;
  auto pos = [&](size_t n) {
    if (n == 0) return size_t{0};
    if (rng() % 2 == 0 && hot_end > hot_begin) {
      return std::min(n - 1, hot_begin + rng() % (hot_end - hot_begin));
    }
    return static_cast<size_t>(rng() % n);
  };
  switch (rng() % 6) {
    case 0:
      for (int i = 0, n = 1 + static_cast<int>(rng() % 8); i < n; ++i) {
        b[pos(b.size())] ^= static_cast<uint8_t>(1 + rng() % 255);
      }
      break;
    case 1:
      b.resize(rng() % b.size());
      break;
    case 2: {
      const int width = 2 << (rng() % 3);  // 2, 4 or 8
      const size_t p = pos(b.size());
      const uint8_t fill = rng() % 2 ? 0xff : 0x7f;
      for (int i = 0; i < width && p + static_cast<size_t>(i) < b.size(); ++i) {
        b[p + static_cast<size_t>(i)] = fill;
      }
      break;
    }
    case 3: {
      Bytes junk(1 + rng() % 64);
      for (auto& j : junk) j = static_cast<uint8_t>(rng());
      const size_t p = pos(b.size());
      b.insert(b.begin() + static_cast<long>(p), junk.begin(), junk.end());
      break;
    }
    case 4: {
      const size_t p = pos(b.size());
      const size_t n = std::min<size_t>(1 + rng() % 32, b.size() - p);
      b.erase(b.begin() + static_cast<long>(p), b.begin() + static_cast<long>(p + n));
      break;
    }
    default: {  // set one byte to a small or extreme value
      b[pos(b.size())] = static_cast<uint8_t>(rng() % 3 == 0 ? 0 : rng() % 2 ? 0xff : rng());
    }
  }
  return b;
}

struct Outcome {
  int loaded = 0;
  int refused = 0;
};

// Runs `fn` and records whether it returned or threw one of the two allowed error types; any
// other exception (bad_alloc, length_error, a JSON library error) fails the test.
template <class Fn>
void expect_clean(Fn fn, Outcome& o, int iteration) {
  try {
    fn();
    ++o.loaded;
  } catch (const normlab::Error&) {
    ++o.refused;
  } catch (const c10::Error&) {
    ++o.refused;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "mutation " << iteration << " threw " << typeid(e).name() << ": " << e.what();
  }
}

void fuzz_file(const std::string& fixture_name, size_t hot_begin, size_t hot_end, uint64_t seed) {
  const Bytes valid = read_file_bytes(fixture(fixture_name));
  TempDir dir;
  const std::string path = dir.file("mutated");
  std::mt19937_64 rng(seed);
  Outcome o;
  const long rss_before = max_rss_kb();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kMutations; ++i) {
    testing::write_bytes(path, mutate(valid, rng, hot_begin, std::min(hot_end, valid.size())));
    expect_clean([&] { load_state_dict(path); }, o, i);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GT(o.refused, kMutations / 4) << "mutations are hardly ever detected";
  EXPECT_LT(seconds, 10.0);
  // Peak memory may not grow by more than 256 MB over the whole run (files are a few KB).
  EXPECT_LT(max_rss_kb() - rss_before, 256 * 1024);
  std::printf("[ fuzz ] %s: %d loaded, %d refused in %.2f s\n", fixture_name.c_str(), o.loaded,
              o.refused, seconds);
}

TEST(WeightsFuzz, PthMutationsLoadOrThrow) {
  const size_t size = read_file_bytes(fixture("small_state_dict.pth")).size();
  // The last ~1.6 KB hold the central directory and end records.
  fuzz_file("small_state_dict.pth", size - 1600, size, 1);
}

TEST(WeightsFuzz, SafetensorsMutationsLoadOrThrow) {
  fuzz_file("small_state_dict.safetensors", 0, 1500, 2);  // the JSON header
}

TEST(WeightsFuzz, PickleMutationsLoadOrThrow) {
  // data.pkl is CRC-protected inside the archive, so its mutations are fed to the unpickler
  // directly, with the archive's real storages behind it.
  const std::string path = fixture("small_state_dict.pth");
  const ZipReader zip(read_file_bytes(path), path);
  const Bytes pkl = zip.read(*zip.find("small_state_dict/data.pkl"));
  UnpickleOptions opts;
  opts.name = "data.pkl";
  opts.tensor_byte_budget = 64 << 20;
  opts.load_storage = [&](const std::string& key, torch::ScalarType dtype, int64_t numel) {
    const ZipEntry* e = zip.find("small_state_dict/data/" + key);
    if (e == nullptr ||
        e->uncompressed_size != static_cast<uint64_t>(numel) * element_size(dtype)) {
      throw Error(key, "no such storage");
    }
    const Bytes raw = zip.read(*e);
    torch::Tensor t = torch::empty({numel}, torch::dtype(dtype));
    if (!raw.empty()) std::memcpy(t.data_ptr(), raw.data(), raw.size());
    return t;
  };
  std::mt19937_64 rng(3);
  Outcome o;
  for (int i = 0; i < kMutations; ++i) {
    const Bytes m = mutate(pkl, rng, 0, pkl.size());
    expect_clean([&] { unpickle(m.data(), m.size(), opts); }, o, i);
  }
  EXPECT_GT(o.refused, kMutations / 4);
  std::printf("[ fuzz ] data.pkl: %d loaded, %d refused\n", o.loaded, o.refused);
}

}  // namespace
}  // namespace normlab::io
