// The durable snapshot file protocol: see snapshot_file.hpp.
//
// Plain POSIX calls. One snapshot_file object is used by one thread at a
// time (the snapshot writer's detached thread, or start-up before it runs);
// two processes or objects must not write the same snapshot concurrently.
#include "storage/snapshot_file.hpp"
#include "storage/posix_io.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace vb::storage {

namespace {

using namespace detail;

/// Writes [data + from, data + from + size) at the file's end in chunks,
/// starting each chunk's writeback at once and waiting for the chunk before
/// it: a large snapshot reaches the disk as it is written instead of in one
/// burst at fsync, where it would hold up the journal's fdatasync (RocksDB's
/// bytes_per_sync). Durability still comes from the fsync after it.
bool write_paced(int fd, const char* data, size_t from, size_t size, int& err) {
  constexpr size_t chunk = 1 << 20;
  size_t done = 0;
  while (done < size) {
    auto n = std::min(chunk, size - done);
    if (!write_all(fd, data + from + done, n, err))
      return false;
    auto off = static_cast<off64_t>(from + done);
    ::sync_file_range(fd, off, static_cast<off64_t>(n), SYNC_FILE_RANGE_WRITE);
    if (off >= static_cast<off64_t>(chunk))
      ::sync_file_range(fd, off - static_cast<off64_t>(chunk),
                        static_cast<off64_t>(chunk),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE
                          | SYNC_FILE_RANGE_WAIT_AFTER);
    done += n;
  }
  return true;
}

// Moves `path` to `base`.corrupt-<UTC>[-N] without ever replacing an
// existing file. Returns the new path, or an empty string (with `error`) when
// the file stays in place.
std::string move_aside(const std::string& path, const std::string& base,
                       std::string& error) {
  bool moved = false;
  auto target = link_aside(path, base, moved, error);
  if (target.empty() || moved)
    return target;
  if (::unlink(path.c_str()) != 0) {
    int err = errno;
    // Both names hold the file; drop the new one so that nothing claims a
    // move that did not happen.
    ::unlink(target.c_str());
    error = sys_error("unlink", path, err);
    return {};
  }
  return target;
}

enum class try_outcome { valid, missing, invalid };

// Reads `path`; a file that is empty, unreadable or fails `check` is moved
// aside and recorded in `result.quarantined`.
try_outcome try_generation(const std::string& path, const std::string& base,
                           const char* label, const snapshot_check& check,
                           load_result& result, bool& dir_changed) {
  std::string contents;
  std::string why;
  switch (read_whole_file(path, contents, why)) {
    case read_outcome::missing:
      return try_outcome::missing;
    case read_outcome::failed:
      break;
    case read_outcome::ok:
      if (contents.empty()) {
        why = "empty file";
        break;
      }
      if (!check) {
        result.contents = std::move(contents);
        return try_outcome::valid;
      }
      {
        std::string check_why;
        bool ok = false;
        try {
          ok = check(contents, check_why);
        } catch (const std::exception& e) {
          check_why = std::string("exception: ") + e.what();
        } catch (...) {
          check_why = "unknown exception";
        }
        if (ok) {
          result.contents = std::move(contents);
          return try_outcome::valid;
        }
        why = "invalid contents: "
              + (check_why.empty() ? std::string("check failed") : check_why);
      }
      break;
  }
  std::string error;
  auto target = move_aside(path, base, error);
  if (target.empty()) {
    spdlog::error("snapshot: corrupt {} generation {} ({}) could not be moved "
                  "aside: {}; it is left in place and not loaded",
                  label, path, why, error);
    return try_outcome::invalid;
  }
  dir_changed = true;
  spdlog::warn("snapshot: corrupt {} generation {} ({}); moved aside to {}",
               label, path, why, target);
  result.quarantined.push_back(std::move(target));
  return try_outcome::invalid;
}

} // namespace

const char* to_string(write_step x) {
  switch (x) {
    case write_step::tmp_opened:
      return "tmp_opened";
    case write_step::tmp_partly_written:
      return "tmp_partly_written";
    case write_step::tmp_written:
      return "tmp_written";
    case write_step::tmp_synced:
      return "tmp_synced";
    case write_step::prev_linked:
      return "prev_linked";
    case write_step::prev_renamed:
      return "prev_renamed";
    case write_step::renamed:
      return "renamed";
    case write_step::dir_synced:
      return "dir_synced";
  }
  return "?";
}

snapshot_file::snapshot_file(std::string dir, std::string file_name)
  : dir_(std::move(dir)) {
  path_ = dir_;
  if (!path_.empty() && path_.back() != '/')
    path_ += '/';
  path_ += file_name;
}

void snapshot_file::on_step(std::function<void(write_step)> hook) {
  hook_ = std::move(hook);
}

bool snapshot_file::write(std::string_view contents, std::string& error) {
  auto step = [this](write_step x) {
    if (hook_)
      hook_(x);
  };
  if (!ensure_dir(dir_, error))
    return false;
  const std::string tmp = path_ + ".tmp";
  const std::string prev = path_ + ".prev";
  const std::string prev_tmp = path_ + ".prev.tmp";

  // 1. The new contents in F.tmp, fsynced.
  auto contents_in_halves = [&](int fd, int& err) {
    step(write_step::tmp_opened);
    const auto half = contents.size() / 2;
    if (!write_paced(fd, contents.data(), 0, half, err))
      return false;
    step(write_step::tmp_partly_written);
    if (!write_paced(fd, contents.data(), half, contents.size() - half, err))
      return false;
    step(write_step::tmp_written);
    return true;
  };
  if (!write_temp_file(tmp, contents_in_halves, error))
    return false;
  step(write_step::tmp_synced);
  // Whatever fails from here leaves F as it was and F.tmp removed.
  auto fail_tmp = [&](std::string msg) {
    ::unlink(tmp.c_str());
    error = std::move(msg);
    return false;
  };

  // 2. The current newest generation becomes F.prev, atomically: F.prev
  // always holds a complete generation (or is missing before the second
  // write).
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    std::string unlink_error;
    remove_if_exists(prev_tmp, unlink_error);
    if (!unlink_error.empty())
      return fail_tmp(unlink_error);
    if (::link(path_.c_str(), prev_tmp.c_str()) != 0)
      return fail_tmp(sys_error("link", path_, prev_tmp, errno));
    step(write_step::prev_linked);
    if (::rename(prev_tmp.c_str(), prev.c_str()) != 0) {
      int err = errno;
      ::unlink(prev_tmp.c_str());
      return fail_tmp(sys_error("rename", prev_tmp, prev, err));
    }
    // When F.prev already was a link to F (a crash after prev_renamed),
    // rename() did nothing and F.prev.tmp is still there.
    ::unlink(prev_tmp.c_str());
    step(write_step::prev_renamed);
  } else if (errno != ENOENT) {
    return fail_tmp(sys_error("stat", path_, errno));
  }

  // 3. The new generation replaces F, atomically.
  if (::rename(tmp.c_str(), path_.c_str()) != 0)
    return fail_tmp(sys_error("rename", tmp, path_, errno));
  step(write_step::renamed);

  // 4. Make the renames durable.
  if (!fsync_dir(dir_, error)) {
    error = "snapshot " + path_ + " replaced but not durable: " + error;
    return false;
  }
  step(write_step::dir_synced);
  return true;
}

load_result snapshot_file::load(const snapshot_check& check) {
  load_result result;
  std::string error;
  if (!ensure_dir(dir_, error)) {
    spdlog::error("snapshot: cannot use data directory for {}: {}", path_,
                  error);
    return result;
  }
  bool dir_changed = false;

  // Leftovers of a write that crashed.
  for (const auto& leftover : {path_ + ".tmp", path_ + ".prev.tmp"}) {
    error.clear();
    if (remove_if_exists(leftover, error)) {
      dir_changed = true;
      spdlog::info("snapshot: removed leftover temporary file {}", leftover);
      result.removed.push_back(leftover);
    } else if (!error.empty()) {
      spdlog::warn("snapshot: cannot remove leftover temporary file {}: {}",
                   leftover, error);
    }
  }

  const std::string prev = path_ + ".prev";
  auto newest = try_generation(path_, path_, "newest", check, result,
                               dir_changed);
  if (newest == try_outcome::valid) {
    result.source = load_source::newest;
  } else {
    auto previous = try_generation(prev, path_, "previous", check, result,
                                   dir_changed);
    if (previous == try_outcome::valid) {
      result.source = load_source::previous;
      spdlog::warn("snapshot: {} {}; loaded the previous generation {}",
                   path_,
                   newest == try_outcome::missing ? "is missing"
                                                  : "is not usable",
                   prev);
    } else if (newest == try_outcome::invalid
               || previous == try_outcome::invalid) {
      spdlog::warn("snapshot: no valid generation of {}; starting without it",
                   path_);
    }
  }

  if (dir_changed) {
    error.clear();
    if (!fsync_dir(dir_, error))
      spdlog::warn("snapshot: {}", error);
  }
  return result;
}

} // namespace vb::storage
