// An append-only journal of records, one per change of a durable owner's
// state (bot_providers, lobbies), replayed at start-up onto the newest
// snapshot. Plain POSIX file I/O, no actors; docs/journal.md.
//
// A record is a 16-byte header and its payload (one JSON object as UTF-8
// text; the journal does not parse it):
//   bytes 0-3   uint32 LE: payload length (bits 0-30, at most
//               journal_max_payload); bit 31 set when the record is not the
//               last of its batch (journal_batch_continues)
//   bytes 4-7   uint32 LE: CRC-32C of bytes 0-3, bytes 8-15 and the payload
//   bytes 8-15  uint64 LE: sequence number
// There is no file header: an empty file is an empty journal. The records of
// one append form a batch, and a batch is replayed whole or not at all.
//
// Files in the data directory, for a journal named F (the snapshot's base
// name, "lobbies" for lobbies.json):
//   F.journal        the main segment
//   F.journal.next   appends while a compaction is pending (begin_rotation)
//   F.journal.prev   the segment before the main one (finish_rotation), the
//                    one the previous snapshot generation needs
//   F.journal.corrupt-<UTC>[-N]   a corrupt segment moved aside at open
//   *.tmp            a segment being rewritten (removed at open)
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "storage/crc32c.hpp"

namespace vb::storage {

/// The largest payload of one record (a larger length is a corrupt header).
inline constexpr uint32_t journal_max_payload = 64u * 1024 * 1024;
/// Bit 31 of a header's length word: more records of the batch follow.
inline constexpr uint32_t journal_batch_continues = 0x80000000u;
/// The size of a record header.
inline constexpr size_t journal_header_size = 16;

/// The steps of append, rotation and open, in order, for crash-point tests:
/// the hook is called after each.
enum class journal_step {
  append_started,        // before the write of a batch
  append_partly_written, // half of the batch's bytes written (only when a
                         // hook is set is the write split in two)
  append_written,        // whole batch written, not yet fdatasync'ed
  append_synced,         // fdatasync done: the batch is durable
  next_created,          // F.journal.next created (begin_rotation)
  next_dir_synced,       // directory fsynced: rotation begun
  main_renamed,          // F.journal renamed to F.journal.prev (finish)
  next_renamed,          // F.journal.next renamed to F.journal
  rotation_dir_synced,   // directory fsynced: rotation finished
  truncated,             // (open) a torn tail cut off, after ftruncate+fsync
  quarantined,           // (open) a corrupt segment linked aside as
                         // F.journal.corrupt-<UTC>; its prefix is in *.tmp
  prefix_rewritten,      // (open) the valid prefix renamed over the segment
};

const char* to_string(journal_step x);

struct journal_record {
  uint64_t seq = 0;
  std::string payload;
};

/// What open() found.
struct journal_replay {
  /// The records with seq > the snapshot's seq, ascending, contiguous from
  /// snapshot_seq + 1.
  std::vector<journal_record> records;
  /// The highest seq now in effect: max(snapshot_seq, last record's seq).
  uint64_t last_seq = 0;
  /// "PATH at offset N" for each torn tail cut off (the file now ends at N).
  std::vector<std::string> truncated;
  /// The new paths of corrupt segments moved aside.
  std::vector<std::string> quarantined;
  /// Leftover temporary files removed.
  std::vector<std::string> removed;
  /// Records after snapshot_seq exist but do not start at snapshot_seq + 1,
  /// or have a hole: those after the gap are not replayed.
  bool gap = false;
  /// F.journal.next exists: a compaction is pending, appends go there.
  bool rotation_pending = false;
};

/// One journal. Used by one thread at a time; one process per journal.
class journal_file {
public:
  /// The files are dir/base_name.journal[.prev|.next]; `dir` is created
  /// (with parents) by open() if missing.
  journal_file(std::string dir, std::string base_name);
  /// Closes the active segment.
  ~journal_file();

  journal_file(const journal_file&) = delete;
  journal_file& operator=(const journal_file&) = delete;

  /// Reads every segment that exists (.prev, main, .next) and validates every
  /// record. A bad record (torn, failing its CRC, an impossible length, a seq
  /// not above the one before) or a file ending inside a batch is:
  ///  - a torn tail when no valid record follows it at any later byte offset
  ///    (a crash mid-append): the segment is cut back to the end of its last
  ///    complete batch (ftruncate + fsync) with a warning naming the file and
  ///    the offset;
  ///  - corruption when a valid record follows: the segment is moved aside as
  ///    F.journal.corrupt-<UTC>[-N] (never deleted, never overwriting) and
  ///    its complete batches before the bad record are written back under its
  ///    name (tmp file, fsync, link aside, rename, fsync dir), with an error.
  /// Removes leftover *.tmp files. Fills `out` with the records above
  /// `snapshot_seq` from all segments merged in seq order (the first segment
  /// wins a duplicate seq), stopping at a gap. Opens the active segment
  /// (.next when it exists, else the main one, created if missing) for
  /// appending. next_seq() is then last_seq + 1, or above every seq found
  /// when there is a gap (a seq is never used twice).
  /// Returns false, with `error`, only when the directory or the active
  /// segment cannot be opened or read.
  bool open(uint64_t snapshot_seq, journal_replay& out, std::string& error);

  /// Appends `payloads` as one batch of consecutive records from next_seq():
  /// one write of a buffer built in one go, one fdatasync. On success
  /// next_seq() advances by payloads.size(). On failure (a payload too large,
  /// a short write, ENOSPC, EIO, EFBIG, fdatasync failing) the segment is
  /// truncated back to its size before the call (and fsynced), next_seq() is
  /// unchanged, `error` says why and false is returned; if that truncate
  /// fails too, every later append (and begin_rotation) first retries it and
  /// fails while it cannot. An empty batch is a no-op success.
  bool append(const std::vector<std::string_view>& payloads,
              std::string& error);

  /// The seq of the next record appended.
  uint64_t next_seq() const noexcept { return next_seq_; }
  /// The size of the active segment, in bytes.
  uint64_t active_bytes() const noexcept { return active_bytes_; }
  /// While a rotation is pending: the highest seq before the first record of
  /// F.journal.next (what the compaction's snapshot must hold so that the
  /// main segment can become .prev). 0 when no rotation is pending.
  uint64_t last_main_seq() const noexcept { return last_main_seq_; }
  bool rotation_pending() const noexcept { return rotation_pending_; }

  /// Starts a compaction: creates F.journal.next (empty), fsyncs the
  /// directory, and sends later appends there. A no-op returning true while
  /// a rotation is pending.
  bool begin_rotation(std::string& error);
  /// Ends it, once the snapshot holding every record up to last_main_seq()
  /// is durable: renames F.journal to F.journal.prev (replacing it) and
  /// F.journal.next to F.journal, fsyncs the directory. Appends go on with
  /// the same descriptor. False without a pending rotation. When only the
  /// final directory fsync fails, the renames are done (the rotation is over)
  /// but false is returned.
  bool finish_rotation(std::string& error);

  /// Test hook, called after each step; a test makes it crash.
  void on_step(std::function<void(journal_step)> hook);

  /// Benchmarks only (the relay ceiling): appends skip fdatasync, so nothing
  /// is durable. Never set by the server's normal options.
  void set_sync(bool on) noexcept { sync_ = on; }

  const std::string& dir() const noexcept { return dir_; }
  std::string main_path() const { return main_path_; }
  std::string prev_path() const { return prev_path_; }
  std::string next_path() const { return next_path_; }
  /// The segment appends go to.
  std::string active_path() const {
    return rotation_pending_ ? next_path_ : main_path_;
  }

private:
  void step(journal_step x);
  void close_active() noexcept;
  // Undoes what a failed operation left (a tail to cut, a directory to
  // fsync); false while it cannot, or when the active segment is unusable.
  bool repair(std::string& error);

  std::string dir_;
  std::string main_path_;
  std::string prev_path_;
  std::string next_path_;
  int fd_ = -1;
  uint64_t next_seq_ = 1;
  uint64_t active_bytes_ = 0;
  uint64_t last_main_seq_ = 0;
  bool rotation_pending_ = false;
  bool need_truncate_ = false;  // the active segment must be cut back to
                                // active_bytes_ before the next write
  bool need_dir_sync_ = false;  // the active segment's creation is not
                                // durable yet
  std::string unusable_;        // why appends are refused (empty: usable)
  std::function<void(journal_step)> hook_;
  bool sync_ = true;
};

/// Reads one journal file and writes each record as a line
///   {"seq":N,"offset":O,"record":<payload verbatim>}
/// to `out` (`null` for an empty payload). Returns 0 when every record is
/// valid and the file ends at the end of a batch. On the first bad record
/// (torn or not), or when the file ends inside a batch, writes
/// "PATH: bad record at offset O: <reason>" to `err` and returns 1; the
/// lines before it are printed. A missing or unreadable file: a message to
/// `err`, 1. The file is not modified.
int dump_journal(const std::string& path, std::ostream& out,
                 std::ostream& err);

} // namespace vb::storage
