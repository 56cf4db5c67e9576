#include "io/download.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "core/files.h"
#include "download_fixtures.h"
#include "io/cache.h"
#include "test_files.h"

namespace normlab::io {
namespace {

namespace fs = std::filesystem;
using testing::EnvGuard;
using testing::expect_error;
using testing::LocalHttpServer;
using testing::TempDir;

std::string random_body(size_t size, unsigned seed) {
  std::mt19937 gen(seed);
  std::string s(size, '\0');
  for (auto& c : s) c = static_cast<char>(gen() & 0xff);
  return s;
}

bool exists(const std::string& path) { return fs::exists(path); }

class Download : public ::testing::Test {
 protected:
  // A proxy from the environment would intercept requests to 127.0.0.1.
  EnvGuard no_proxy_{"no_proxy", "*"};
  EnvGuard no_proxy_upper_{"NO_PROXY", "*"};
  LocalHttpServer server_;
  TempDir dir_;
  const std::string body_ = random_body(200000, 1);
  const std::string sha_ = sha256_hex(body_);

  DownloadOptions options(const std::string& name) {
    server_.serve("/" + name, body_);
    DownloadOptions o;
    o.url = server_.url("/" + name);
    o.sha256 = sha_;
    o.dest_path = dir_.path() + "/sub/" + name;
    o.progress = false;
    o.timeout_s = 5;
    return o;
  }
};

TEST(Sha256File, MatchesInMemoryHashAcrossBlockBoundaries) {
  TempDir dir;
  // FIPS 180-4 example "abc".
  testing::write_bytes(dir.file("abc"), {'a', 'b', 'c'});
  EXPECT_EQ(sha256_file(dir.file("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  for (size_t size : {0, 55, 56, 63, 64, 65, 1000, (1 << 20) + 3}) {
    const std::string body = random_body(size, static_cast<unsigned>(size));
    const auto path = dir.file("f" + std::to_string(size));
    write_file_atomic(path, body);
    EXPECT_EQ(sha256_file(path), sha256_hex(body)) << size << " bytes";
  }
}

TEST(Sha256Matches, AcceptsFullHashAndPrefixesOfAtLeast8Digits) {
  const std::string actual = sha256_hex(std::string("abc"));
  EXPECT_TRUE(sha256_matches("", actual));
  EXPECT_TRUE(sha256_matches(actual, actual));
  EXPECT_TRUE(sha256_matches("BA7816BF", actual));
  EXPECT_TRUE(sha256_matches("ba7816bf8f01", actual));
  EXPECT_FALSE(sha256_matches("ba7816bf8f02", actual));
  EXPECT_FALSE(sha256_matches(std::string(64, '0'), actual));
  expect_error([&] { sha256_matches("ba7816b", actual); }, {"ba7816b", "8 to 64 hex digits"});
  expect_error([&] { sha256_matches("zz7816bf", actual); }, {"zz7816bf", "hex"});
}

TEST(CacheDir, PrefersNormlabCacheThenXdgThenHome) {
  EnvGuard home("HOME", "/home/someone");
  {
    EnvGuard own("NORMLAB_CACHE", "/data/nl-cache");
    EnvGuard xdg("XDG_CACHE_HOME", "/xdg");
    EXPECT_EQ(cache_dir(), "/data/nl-cache");
  }
  EnvGuard own("NORMLAB_CACHE", "");
  {
    EnvGuard xdg("XDG_CACHE_HOME", "/xdg");
    EXPECT_EQ(cache_dir(), "/xdg/normlab");
  }
  EnvGuard xdg("XDG_CACHE_HOME", "relative/ignored");  // XDG spec: relative paths are invalid
  EXPECT_EQ(cache_dir(), "/home/someone/.cache/normlab");
}

TEST_F(Download, WritesTheWholeFileAndNoPart) {
  auto o = options("a.bin");
  o.progress = true;  // plain lines on a non-terminal; must not disturb the transfer
  download_file(o);
  EXPECT_EQ(read_file_text(o.dest_path), body_);
  EXPECT_FALSE(exists(o.dest_path + ".part"));
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].range, "");
  EXPECT_EQ(reqs[0].status, 200);
}

TEST_F(Download, ResumesAPartFileWithARangeRequest) {
  auto o = options("b.bin");
  fs::create_directories(fs::path(o.dest_path).parent_path());
  write_file_atomic(o.dest_path + ".part", body_.substr(0, 70000));
  download_file(o);
  EXPECT_EQ(read_file_text(o.dest_path), body_);
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].range, "bytes=70000-");
  EXPECT_EQ(reqs[0].status, 206);
  EXPECT_EQ(reqs[0].body_bytes, static_cast<int64_t>(body_.size()) - 70000);
}

TEST_F(Download, InterruptedTransferKeepsThePartAndTheNextRunResumes) {
  auto o = options("c.bin");
  server_.set_cut_after(50000);
  expect_error([&] { download_file(o); },
               {o.url, "50000 bytes kept", o.dest_path + ".part", "curl -L -o '" + o.dest_path});
  EXPECT_FALSE(exists(o.dest_path));
  ASSERT_TRUE(exists(o.dest_path + ".part"));
  EXPECT_EQ(fs::file_size(o.dest_path + ".part"), 50000u);
  server_.set_cut_after(-1);
  download_file(o);
  EXPECT_EQ(read_file_text(o.dest_path), body_);
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].range, "bytes=50000-");
}

TEST_F(Download, ServerIgnoringRangeRestartsFromByteZero) {
  auto o = options("d.bin");
  server_.set_honor_range(false);
  fs::create_directories(fs::path(o.dest_path).parent_path());
  // A stale .part whose bytes differ: appending the 200 body to it would corrupt the file.
  write_file_atomic(o.dest_path + ".part", std::string(5000, 'x'));
  download_file(o);
  EXPECT_EQ(read_file_text(o.dest_path), body_);
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].range, "bytes=5000-");
  EXPECT_EQ(reqs[0].status, 200);
}

TEST_F(Download, PartLongerThanTheFileRestartsAfter416) {
  auto o = options("e.bin");
  fs::create_directories(fs::path(o.dest_path).parent_path());
  write_file_atomic(o.dest_path + ".part", body_ + "trailing");
  download_file(o);
  EXPECT_EQ(read_file_text(o.dest_path), body_);
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].status, 416);
  EXPECT_EQ(reqs[1].range, "");
}

TEST_F(Download, WrongChecksumIsAnErrorAndDeletesThePart) {
  auto o = options("f.bin");
  o.sha256 = std::string(64, 'a');
  expect_error([&] { download_file(o); }, {o.url, "checksum mismatch", o.sha256, sha_});
  EXPECT_FALSE(exists(o.dest_path));
  EXPECT_FALSE(exists(o.dest_path + ".part"));
}

TEST_F(Download, ChecksumPrefixIsChecked) {
  auto o = options("g.bin");
  o.sha256 = sha_.substr(0, 8);
  download_file(o);
  EXPECT_EQ(read_file_text(o.dest_path), body_);

  auto bad = options("h.bin");
  bad.sha256 = sha_[0] == '0' ? "10000000" : "00000000";
  expect_error([&] { download_file(bad); }, {bad.url, "checksum mismatch", "(prefix)", sha_});
  EXPECT_FALSE(exists(bad.dest_path + ".part"));
}

TEST_F(Download, ConnectionRefusedNamesTheUrlAndWhereToPutTheFile) {
  DownloadOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(testing::unused_local_port()) + "/w.pth";
  o.dest_path = dir_.path() + "/weights/w.pth";
  o.progress = false;
  o.timeout_s = 5;
  expect_error([&] { download_file(o); },
               {o.url, "download failed", "curl -L -o '" + o.dest_path + "' '" + o.url + "'"});
  EXPECT_FALSE(exists(o.dest_path));
}

TEST_F(Download, HttpErrorIsAnError) {
  auto o = options("i.bin");
  o.url = server_.url("/missing.bin");
  expect_error([&] { download_file(o); }, {o.url, "HTTP 404", o.dest_path});
  EXPECT_FALSE(exists(o.dest_path));
}

TEST_F(Download, EnsureFileDownloadsOnceThenTrustsTheSidecar) {
  auto o = options("j.bin");
  EXPECT_EQ(ensure_file(o.url, sha_, o.dest_path, false), o.dest_path);
  EXPECT_EQ(read_file_text(o.dest_path), body_);
  ASSERT_TRUE(exists(o.dest_path + ".sha256"));
  EXPECT_EQ(read_file_text(o.dest_path + ".sha256").substr(0, 64), sha_);
  server_.remove("/j.bin");  // a second download would now fail
  EXPECT_EQ(ensure_file(o.url, sha_, o.dest_path, false), o.dest_path);
  EXPECT_EQ(ensure_file(o.url, sha_.substr(0, 8), o.dest_path, false), o.dest_path);
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(Download, EnsureFileVerifiesAFilePlacedByHand) {
  auto o = options("k.bin");
  fs::create_directories(fs::path(o.dest_path).parent_path());
  write_file_atomic(o.dest_path, body_);
  EXPECT_EQ(ensure_file(o.url, sha_, o.dest_path, false), o.dest_path);
  EXPECT_TRUE(exists(o.dest_path + ".sha256"));
  EXPECT_TRUE(server_.requests().empty());

  // Replaced by another file: the sidecar no longer describes it, so it is hashed again.
  write_file_atomic(o.dest_path, std::string("something else"));
  expect_error([&] { ensure_file(o.url, sha_, o.dest_path, false); },
               {o.dest_path, sha_, sha256_hex(std::string("something else")), "delete it"});
  EXPECT_TRUE(server_.requests().empty());
}

}  // namespace
}  // namespace normlab::io
