#include "core/files.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace normlab {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path dir =
      fs::temp_directory_path() / ("normlab_core_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(Sha256, MatchesFips180Vectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // Two-block message (56 bytes: padding spills into a second block).
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, StreamingInOddChunksMatchesOneShot) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += std::to_string(i * 7919) + ",";
  Sha256 sha;
  size_t pos = 0, chunk = 1;
  while (pos < text.size()) {
    size_t n = std::min(chunk, text.size() - pos);
    sha.update(text.data() + pos, n);
    pos += n;
    chunk = chunk * 3 + 1;  // 1, 4, 13, 40, ... crosses block boundaries unevenly
  }
  EXPECT_EQ(sha.hex(), sha256_hex(text));
}

TEST(WriteFileAtomic, WritesAndReplaces) {
  auto dir = temp_dir("atomic");
  std::string path = (dir / "a.txt").string();
  write_file_atomic(path, std::string("first"));
  EXPECT_EQ(read_file_text(path), "first");
  write_file_atomic(path, std::string("second, longer"));
  EXPECT_EQ(read_file_text(path), "second, longer");
  // Readable like any file the user writes (mkstemp alone would give 0600).
  auto perms = fs::status(path).permissions();
  EXPECT_NE(perms & fs::perms::others_read, fs::perms::none);
  // No temporary files are left behind.
  int entries = 0;
  for (auto& e : fs::directory_iterator(dir)) (void)e, ++entries;
  EXPECT_EQ(entries, 1);
}

TEST(WriteFileAtomic, MissingDirectoryNamesPathAndKeepsNothing) {
  auto dir = temp_dir("atomic_missing");
  std::string path = (dir / "nope" / "a.txt").string();
  try {
    write_file_atomic(path, std::string("x"));
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(ReadFile, MissingFileNamesPath) {
  try {
    read_file_bytes("/nonexistent/normlab/file.bin");
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.subject(), "/nonexistent/normlab/file.bin");
  }
}

}  // namespace
}  // namespace normlab
