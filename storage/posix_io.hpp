// The small POSIX helpers both file protocols use (storage/snapshot_file,
// storage/journal): error texts, mkdir -p, whole writes, durable temporary
// files, directory fsync, unlink, whole-file reads. Internal to storage/.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace vb::storage::detail {

/// "what path: strerror(err)".
std::string sys_error(const char* what, const std::string& path, int err);
/// "what from -> to: strerror(err)".
std::string sys_error(const char* what, const std::string& from,
                      const std::string& to, int err);
/// close(2), never retried (Linux releases the descriptor even on EINTR).
int close_fd(int fd);
/// mkdir -p: creates `dir` and its missing parents (mode 0755).
bool ensure_dir(const std::string& dir, std::string& error);
/// Writes all of [data, data + size), over partial writes and EINTR.
bool write_all(int fd, const char* data, size_t size, int& err);
/// Writes a new file's contents to `fd` (with write_all, and any test hooks
/// between the writes); false, with the errno in `err`, when a write fails.
using write_contents = std::function<bool(int fd, int& err)>;
/// The durable half of "write a temporary file, rename it into place":
/// open(O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), `contents`, fsync,
/// close. On failure `error` is "open|write|fsync|close TMP: strerror" and
/// the file is removed (unless open failed). The caller renames it.
bool write_temp_file(const std::string& tmp, const write_contents& contents,
                     std::string& error);
/// fsync of a directory (a rename or a new file in it is durable).
bool fsync_dir(const std::string& dir, std::string& error);
/// Removes `path`; true if it existed and was removed. ENOENT is no error.
bool remove_if_exists(const std::string& path, std::string& error);

enum class read_outcome { ok, missing, failed };
/// The whole file in `out`; `why` says what failed.
read_outcome read_whole_file(const std::string& path, std::string& out,
                             std::string& why);

/// "YYYYMMDDTHHMMSSZ" for now, in UTC.
std::string utc_stamp();
/// Links `path` to `base`.corrupt-<UTC>[-N] (the quarantine name), never
/// replacing an existing file; where hard links fail, renames it (atomically,
/// refusing to replace) and sets `moved`. Returns the new name, or an empty
/// string with `error`.
std::string link_aside(const std::string& path, const std::string& base,
                       bool& moved, std::string& error);

} // namespace vb::storage::detail
