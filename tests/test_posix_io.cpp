// Tests of the durable temporary file (storage/posix_io.hpp's
// write_temp_file), the first half of every snapshot write and journal
// quarantine; their crash points are in test_snapshot_file and test_journal.
#include <catch2/catch.hpp>

#include "storage/posix_io.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

using vb::storage::detail::write_all;
using vb::storage::detail::write_temp_file;

namespace {

namespace fs = std::filesystem;

// A fresh directory under /tmp, removed with its contents when the last
// copy of the handle goes (also when a REQUIRE ends the test early).
std::shared_ptr<const std::string> fresh_dir() {
  char buf[] = "/tmp/vb-posix-io-test-XXXXXX";
  REQUIRE(::mkdtemp(buf) != nullptr);
  return {new std::string(buf), [](const std::string* dir) {
            std::error_code ec;
            fs::remove_all(*dir, ec);
            delete dir;
          }};
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

} // namespace

TEST_CASE("a durable temporary file holds exactly what was written, in "
          "however many writes, over an older file of the same name",
          "[posix_io]") {
  const auto dir = fresh_dir();
  const auto tmp = *dir + "/f.tmp";
  { std::ofstream(tmp) << "a longer leftover of an earlier write"; }
  int calls = 0;
  std::string error;
  auto two_writes = [&](int fd, int& err) {
    ++calls;
    return write_all(fd, "new ", 4, err) && write_all(fd, "text", 4, err);
  };
  REQUIRE(write_temp_file(tmp, two_writes, error));
  CHECK(error.empty());
  CHECK(calls == 1);
  CHECK(slurp(tmp) == "new text");
  struct stat st {};
  REQUIRE(::stat(tmp.c_str(), &st) == 0);
  const mode_t mask = ::umask(0);
  ::umask(mask);
  CHECK((st.st_mode & 0777) == (0644 & ~mask));
}

TEST_CASE("a durable temporary file whose write fails is removed and the "
          "error names the write",
          "[posix_io]") {
  const auto dir = fresh_dir();
  const auto tmp = *dir + "/f.tmp";
  std::string error;
  auto fails_halfway = [](int fd, int& err) {
    if (!write_all(fd, "half", 4, err))
      return false;
    err = ENOSPC;
    return false;
  };
  CHECK_FALSE(write_temp_file(tmp, fails_halfway, error));
  CHECK(error == "write " + tmp + ": " + std::strerror(ENOSPC));
  CHECK_FALSE(exists(tmp));
}

TEST_CASE("a durable temporary file that cannot be created leaves nothing "
          "and the error names the open",
          "[posix_io]") {
  const auto dir = fresh_dir();
  const auto tmp = *dir + "/missing/f.tmp";
  bool called = false;
  std::string error;
  auto never = [&](int, int&) {
    called = true;
    return true;
  };
  CHECK_FALSE(write_temp_file(tmp, never, error));
  CHECK_FALSE(called);
  CHECK(error == "open " + tmp + ": " + std::strerror(ENOENT));
  CHECK_FALSE(exists(tmp));
}
