// The durable snapshot file protocol, shared by every snapshot of the server
// (bot_providers.json, lobbies.json). Plain POSIX file I/O, no actors: the
// snapshot writer actor calls write() on its own detached thread.
//
// Files in the data directory, for a snapshot named F:
//   F            the newest generation
//   F.prev       the previous generation (kept, a fallback when F is corrupt)
//   F.tmp        a write in progress (removed at load if a crash left it)
//   F.corrupt-<UTC time>[-N]   a corrupt generation moved aside at load
//
// write(): write F.tmp, fsync it, hard-link F to F.prev (atomically, through
// a temporary link), rename F.tmp over F, fsync the directory. A crash
// between any two steps leaves F holding the old or the new contents, never
// a torn file.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace vb::storage {

/// The steps of one write, in order, for crash-point tests.
enum class write_step {
  tmp_opened,         // F.tmp created and empty
  tmp_partly_written, // half of the contents written
  tmp_written,        // all contents written, not yet fsynced
  tmp_synced,         // F.tmp fsynced and closed
  prev_linked,        // F hard-linked to F.prev.tmp
  prev_renamed,       // F.prev.tmp renamed over F.prev
  renamed,            // F.tmp renamed over F
  dir_synced,         // directory fsynced: the write is durable
};

const char* to_string(write_step x);

/// Where load() found the contents it returns.
enum class load_source { none, newest, previous };

struct load_result {
  load_source source = load_source::none;
  std::string contents;                 // empty when source == none
  std::vector<std::string> quarantined; // paths of files moved aside
  std::vector<std::string> removed;     // leftover temporary files removed
};

/// Decides whether a file's contents are a valid snapshot; on false, `why`
/// says what is wrong (for the log line).
using snapshot_check
  = std::function<bool(const std::string& contents, std::string& why)>;

class snapshot_file {
public:
  /// `dir` is created (with parents) on first use if missing.
  snapshot_file(std::string dir, std::string file_name);

  /// Writes `contents` durably. Returns true on success; on failure, fills
  /// `error` and leaves the newest generation as it was.
  bool write(std::string_view contents, std::string& error);

  /// Loads the newest valid generation. Leftover temporary files are
  /// removed. A newest file that is empty, unreadable or fails `check` is
  /// moved aside (never deleted, never overwriting another file) with a
  /// warning in the log, and the previous generation is tried the same way.
  load_result load(const snapshot_check& check);

  /// Test hook, called after each step of write(); a test makes it crash.
  void on_step(std::function<void(write_step)> hook);

  const std::string& path() const noexcept { return path_; }
  const std::string& dir() const noexcept { return dir_; }

private:
  std::string dir_;
  std::string path_;
  std::function<void(write_step)> hook_;
};

} // namespace vb::storage
