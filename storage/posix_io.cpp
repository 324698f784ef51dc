// See storage/posix_io.hpp.
#include "storage/posix_io.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>

#include <fcntl.h>
#include <stdio.h> // renameat2
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

namespace vb::storage::detail {

// "what path: strerror(err)".
std::string sys_error(const char* what, const std::string& path, int err) {
  std::string msg = what;
  msg += ' ';
  msg += path;
  msg += ": ";
  msg += std::strerror(err);
  return msg;
}

std::string sys_error(const char* what, const std::string& from,
                      const std::string& to, int err) {
  std::string msg = what;
  msg += ' ';
  msg += from;
  msg += " -> ";
  msg += to;
  msg += ": ";
  msg += std::strerror(err);
  return msg;
}

int close_fd(int fd) {
  // Linux releases the descriptor even when close() fails with EINTR: never
  // retry, report the error once.
  return ::close(fd);
}

// mkdir -p: creates `dir` and its missing parents (mode 0755).
bool ensure_dir(const std::string& dir, std::string& error) {
  if (dir.empty()) {
    error = "empty data directory path";
    return false;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode))
      return true;
    error = sys_error("data directory", dir, ENOTDIR);
    return false;
  }
  // Create each prefix ending before a '/', then the whole path.
  std::string::size_type pos = 0;
  for (;;) {
    pos = dir.find('/', pos + 1);
    auto prefix = dir.substr(0, pos);
    if (!prefix.empty() && prefix.back() != '/') {
      if (::mkdir(prefix.c_str(), 0755) != 0) {
        int err = errno;
        if (err != EEXIST) {
          error = sys_error("mkdir", prefix, err);
          return false;
        }
        if (::stat(prefix.c_str(), &st) != 0) {
          error = sys_error("stat", prefix, errno);
          return false;
        }
        if (!S_ISDIR(st.st_mode)) {
          error = sys_error("mkdir", prefix, ENOTDIR);
          return false;
        }
      }
    }
    if (pos == std::string::npos)
      return true;
  }
}

// Writes all of [data, data + size), looping over partial writes and EINTR.
bool write_all(int fd, const char* data, size_t size, int& err) {
  while (size > 0) {
    auto n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      err = errno;
      return false;
    }
    if (n == 0) { // not for a regular file; never loop forever
      err = EIO;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool write_temp_file(const std::string& tmp, const write_contents& contents,
                     std::string& error) {
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = sys_error("open", tmp, errno);
    return false;
  }
  // A half-written temporary file must not be taken for a complete one.
  auto fail = [&](const char* what, int err) {
    if (fd >= 0)
      close_fd(fd);
    ::unlink(tmp.c_str());
    error = sys_error(what, tmp, err);
    return false;
  };
  int err = 0;
  if (!contents(fd, err))
    return fail("write", err);
  if (::fsync(fd) != 0)
    return fail("fsync", errno);
  int closing = fd;
  fd = -1;
  if (close_fd(closing) != 0)
    return fail("close", errno);
  return true;
}

bool fsync_dir(const std::string& dir, std::string& error) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    error = sys_error("open directory", dir, errno);
    return false;
  }
  bool ok = true;
  if (::fsync(fd) != 0) {
    error = sys_error("fsync directory", dir, errno);
    ok = false;
  }
  close_fd(fd);
  return ok;
}

// Removes `path`; true if it existed and was removed. ENOENT is no error.
bool remove_if_exists(const std::string& path, std::string& error) {
  if (::unlink(path.c_str()) == 0)
    return true;
  if (errno != ENOENT)
    error = sys_error("unlink", path, errno);
  return false;
}


read_outcome read_whole_file(const std::string& path, std::string& out,
                             std::string& why) {
  out.clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return read_outcome::missing;
    why = "unreadable: " + sys_error("open", path, errno);
    return read_outcome::failed;
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0)
    out.reserve(static_cast<size_t>(st.st_size));
  char buf[64 * 1024];
  for (;;) {
    auto n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      why = "unreadable: " + sys_error("read", path, errno);
      close_fd(fd);
      out.clear();
      return read_outcome::failed;
    }
    if (n == 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  close_fd(fd);
  return read_outcome::ok;
}

// "YYYYMMDDTHHMMSSZ" for now, in UTC.
std::string utc_stamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm {};
  ::gmtime_r(&now, &tm);
  char buf[32];
  auto n = std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return std::string(buf, n);
}

// Links `path` to `base`.corrupt-<UTC>[-N], never replacing an existing file
// (link() fails with EEXIST instead). `moved` says the original name is gone
// (no hard links here: an atomic rename that refuses to replace was used).
// Returns the new name, or an empty string with `error`.
std::string link_aside(const std::string& path, const std::string& base,
                       bool& moved, std::string& error) {
  moved = false;
  const std::string stem = base + ".corrupt-" + utc_stamp();
  constexpr int max_attempts = 10000;
  for (int n = 0; n < max_attempts; ++n) {
    auto target = n == 0 ? stem : stem + '-' + std::to_string(n);
    if (::link(path.c_str(), target.c_str()) == 0)
      return target;
    int err = errno;
    if (err == EEXIST)
      continue;
#ifdef RENAME_NOREPLACE
    if (err == EPERM || err == EOPNOTSUPP || err == EMLINK) {
      if (::renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, target.c_str(),
                      RENAME_NOREPLACE)
          == 0) {
        moved = true;
        return target;
      }
      int err2 = errno;
      if (err2 == EEXIST)
        continue;
      error = sys_error("link", path, target, err) + "; "
              + sys_error("rename", path, target, err2);
      return {};
    }
#endif
    error = sys_error("link", path, target, err);
    return {};
  }
  error = "no free name after " + std::to_string(max_attempts) + " tries for "
          + stem;
  return {};
}

} // namespace vb::storage::detail
