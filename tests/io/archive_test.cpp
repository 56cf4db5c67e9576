#include "io/archive.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "core/files.h"
#include "download_fixtures.h"
#include "test_files.h"

namespace normlab::io {
namespace {

namespace fs = std::filesystem;
using testing::archive_bytes;
using testing::ArchiveEntry;
using testing::ArchiveKind;
using testing::expect_error;
using testing::TempDir;

void write(const std::string& path, const std::string& s) { write_file_atomic(path, s); }

TEST(Archive, ExtractsTarGzWithDirectories) {
  TempDir dir;
  const auto tgz = dir.file("data.tar.gz");
  write(tgz, archive_bytes({{"top/", "", AE_IFDIR},
                            {"top/a.bin", "alpha"},
                            {"./top/nested/b.bin", std::string(100000, 'b')},
                            {"empty.txt", ""}},
                           ArchiveKind::kTarGz));
  const auto out = dir.path() + "/out";
  auto written = extract_archive(tgz, out);
  EXPECT_EQ(written.size(), 3u);
  EXPECT_EQ(read_file_text(out + "/top/a.bin"), "alpha");
  EXPECT_EQ(read_file_text(out + "/top/nested/b.bin"), std::string(100000, 'b'));
  EXPECT_EQ(read_file_text(out + "/empty.txt"), "");
  // No temporary files left behind.
  for (const auto& e : fs::recursive_directory_iterator(out)) {
    EXPECT_EQ(e.path().string().find(".extracting"), std::string::npos) << e.path();
  }
}

TEST(Archive, ExtractsZipAndTgz) {
  TempDir dir;
  const auto zip = dir.file("data.zip");
  write(zip, archive_bytes({{"z/one.txt", "1"}, {"z/two.txt", "22"}}, ArchiveKind::kZip));
  extract_archive(zip, dir.path() + "/zip");
  EXPECT_EQ(read_file_text(dir.path() + "/zip/z/two.txt"), "22");

  const auto tgz = dir.file("data.tgz");
  write(tgz, archive_bytes({{"t.txt", "tgz"}}, ArchiveKind::kTarGz));
  extract_archive(tgz, dir.path() + "/tgz");
  EXPECT_EQ(read_file_text(dir.path() + "/tgz/t.txt"), "tgz");
}

TEST(Archive, DecompressesASingleGzipFile) {
  TempDir dir;
  const auto gz = dir.file("train-labels-idx1-ubyte.gz");
  testing::Bytes payload = testing::idx_bytes({7});
  testing::write_bytes(gz, testing::gzip(payload));
  auto written = extract_archive(gz, dir.path() + "/out");
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(written[0], dir.path() + "/out/train-labels-idx1-ubyte");
  EXPECT_EQ(read_file_bytes(written[0]), payload);
}

TEST(Archive, RefusesPathTraversal) {
  TempDir dir;
  const auto out = dir.path() + "/deep/out";
  const std::vector<std::string> bad = {"../evil.txt", "a/../../evil.txt", "/tmp/evil.txt"};
  for (size_t i = 0; i < bad.size(); ++i) {
    const auto tgz = dir.file("bad" + std::to_string(i) + ".tar.gz");
    write(tgz, archive_bytes({{"ok.txt", "fine"}, {bad[i], "pwned"}}, ArchiveKind::kTarGz));
    expect_error([&] { extract_archive(tgz, out); }, {tgz, bad[i], "refused"});
  }
  EXPECT_FALSE(fs::exists(dir.path() + "/deep/evil.txt"));
  EXPECT_FALSE(fs::exists(dir.path() + "/evil.txt"));
  EXPECT_FALSE(fs::exists(dir.path() + "/deep/evil.txt"));

  const auto zip = dir.file("bad.zip");
  write(zip, archive_bytes({{"../evil.txt", "pwned"}}, ArchiveKind::kZip));
  expect_error([&] { extract_archive(zip, out); }, {zip, "../evil.txt", "refused"});
  EXPECT_FALSE(fs::exists(dir.path() + "/deep/evil.txt"));
}

TEST(Archive, RefusesLinks) {
  TempDir dir;
  const auto tgz = dir.file("link.tar.gz");
  write(tgz, archive_bytes({{"passwd", "", AE_IFLNK, "/etc/passwd"}}, ArchiveKind::kTarGz));
  expect_error([&] { extract_archive(tgz, dir.path() + "/out"); },
               {tgz, "passwd", "only regular files and directories"});
  EXPECT_FALSE(fs::exists(dir.path() + "/out/passwd"));
}

TEST(Archive, CorruptArchiveIsAnError) {
  TempDir dir;
  const auto tgz = dir.file("data.tar.gz");
  std::string bytes = archive_bytes({{"a.bin", std::string(50000, 'a')}}, ArchiveKind::kTarGz);
  write(tgz, bytes.substr(0, bytes.size() / 2));  // truncated
  expect_error([&] { extract_archive(tgz, dir.path() + "/out"); }, {tgz});
  const auto missing = dir.path() + "/missing.tar.gz";
  expect_error([&] { extract_archive(missing, dir.path() + "/out"); }, {missing, "cannot open"});
}

}  // namespace
}  // namespace normlab::io
