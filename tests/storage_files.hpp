// Helpers of the durable-file tests (test_journal.cpp, test_snapshot_file.cpp):
// files read and written whole, a directory's listing, UTC stamps of
// quarantined names, spdlog's output captured, and forked children reaped.
// Include after <catch2/catch.hpp>.
#pragma once

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "tests/temp_dir.hpp"

namespace vb::test {

/// The whole file, or nothing when it cannot be read.
inline std::optional<std::string> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

/// Replaces the file with `contents`.
inline void put(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  REQUIRE(out);
  out << contents;
  out.close();
  REQUIRE(out);
}

/// The names in `dir`, sorted.
inline std::vector<std::string> list(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

/// "YYYYMMDDTHHMMSSZ" for `t`, in UTC.
inline std::string utc_stamp(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  auto n = std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return std::string(buf, n);
}

/// Captures spdlog's default logger output ("<level> <message>" lines).
struct log_capture {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> saved = spdlog::default_logger();

  log_capture() {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_pattern("%l %v");
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }

  ~log_capture() { spdlog::set_default_logger(saved); }

  std::string text() const { return out.str(); }

  /// The first line at `level` ("warning", "error"), or empty.
  std::string line(const std::string& level) const {
    auto text = out.str();
    auto start = text.find(level + " ");
    if (start == std::string::npos)
      return {};
    return text.substr(start, text.find('\n', start) - start);
  }
};

/// A fresh directory, and spdlog's output kept out of the test's.
struct quiet_dir {
  log_capture quiet;
  temp_dir tmp;
};

/// Forks (stdio flushed first, so that nothing is written twice).
inline pid_t fork_child() {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  return pid;
}

/// Forks with a pipe from the child to the parent. `fd` is the child's
/// writing end in the child, the parent's reading end in the parent.
inline pid_t fork_with_pipe(int& fd) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = fork_child();
  ::close(fds[pid == 0 ? 0 : 1]);
  fd = fds[pid == 0 ? 1 : 0];
  return pid;
}

/// One read of `size` bytes (again when interrupted): whether it got them.
inline bool read_exactly(int fd, void* buf, size_t size) {
  for (;;) {
    auto n = ::read(fd, buf, size);
    if (n < 0 && errno == EINTR)
      continue;
    return n == static_cast<ssize_t>(size);
  }
}

/// The child's wait status.
inline int wait_for(pid_t pid) {
  int status = 0;
  for (;;) {
    if (::waitpid(pid, &status, 0) == pid)
      return status;
    if (errno != EINTR)
      FAIL("waitpid: " << std::strerror(errno));
  }
}

/// Reaps a child that must have died of SIGKILL.
inline void require_killed(pid_t pid) {
  int status = wait_for(pid);
  INFO("child status " << status);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGKILL);
}

/// Kills a child with SIGKILL, `delay_us` microseconds from now, and reaps it.
inline void kill_child(pid_t pid, int delay_us = 0) {
  if (delay_us > 0)
    ::usleep(static_cast<useconds_t>(delay_us));
  REQUIRE(::kill(pid, SIGKILL) == 0);
  require_killed(pid);
}

} // namespace vb::test
