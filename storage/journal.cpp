// The append-only journal: see journal.hpp and docs/journal.md.
//
// Plain POSIX calls. One journal_file object is used by one thread at a time
// (the journal store actor, or start-up before it runs); two processes or
// objects must not use the same journal concurrently.
#include "storage/journal.hpp"
#include "storage/posix_io.hpp"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <optional>
#include <ostream>
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

using step_fn = std::function<void(journal_step)>;

// No record has this seq: the one after it would be 0.
constexpr uint64_t max_seq = std::numeric_limits<uint64_t>::max();

// ftruncate + fsync.
bool cut_fd(int fd, uint64_t size, const std::string& path,
            std::string& error) {
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    error = sys_error("ftruncate", path, errno);
    return false;
  }
  if (::fsync(fd) != 0) {
    error = sys_error("fsync", path, errno);
    return false;
  }
  return true;
}

bool cut_file(const std::string& path, uint64_t size, std::string& error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    error = sys_error("open", path, errno);
    return false;
  }
  bool ok = cut_fd(fd, size, path, error);
  close_fd(fd);
  return ok;
}

// -- the record codec ---------------------------------------------------------

inline void put_le32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<char>((v >> (8 * i)) & 0xffu);
}

inline void put_le64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<char>((v >> (8 * i)) & 0xffu);
}

inline uint32_t get_le32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = v << 8 | static_cast<unsigned char>(p[i]);
  return v;
}

inline uint64_t get_le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = v << 8 | static_cast<unsigned char>(p[i]);
  return v;
}

// The CRC of a record: header bytes 0-3 and 8-15, then the payload.
uint32_t record_crc(const char* header, const char* payload, size_t size) {
  uint32_t crc = crc32c(header, 4);
  crc = crc32c(header + 8, 8, crc);
  return crc32c(payload, size, crc);
}

void encode_record(std::string& out, uint64_t seq, std::string_view payload,
                   bool continues) {
  char h[journal_header_size];
  put_le32(h, static_cast<uint32_t>(payload.size())
                | (continues ? journal_batch_continues : 0u));
  put_le64(h + 8, seq);
  put_le32(h + 4, record_crc(h, payload.data(), payload.size()));
  out.append(h, sizeof(h));
  out.append(payload.data(), payload.size());
}

struct decoded_record {
  uint64_t seq = 0;
  size_t offset = 0;
  std::string_view payload;
  bool continues = false; // not the last record of its batch
  size_t end = 0;         // offset of the byte after it
};

// Decodes the record at `off` (header, length, CRC; not the seq's order).
// False, with `why` when it is not null, when there is none.
bool decode_at(std::string_view data, size_t off, decoded_record& rec,
               std::string* why) {
  const size_t left = data.size() - off;
  if (left < journal_header_size) {
    if (why)
      *why = "truncated header (" + std::to_string(left) + " of "
             + std::to_string(journal_header_size) + " bytes)";
    return false;
  }
  const char* h = data.data() + off;
  const uint32_t word = get_le32(h);
  const uint32_t size = word & ~journal_batch_continues;
  if (size > journal_max_payload) {
    if (why)
      *why = "payload length " + std::to_string(size) + " exceeds the maximum "
             + std::to_string(journal_max_payload);
    return false;
  }
  if (left - journal_header_size < size) {
    if (why)
      *why = "truncated payload ("
             + std::to_string(left - journal_header_size) + " of "
             + std::to_string(size) + " bytes)";
    return false;
  }
  const uint32_t stored = get_le32(h + 4);
  const uint32_t computed = record_crc(h, h + journal_header_size, size);
  if (stored != computed) {
    if (why) {
      char buf[80];
      std::snprintf(buf, sizeof(buf),
                    "CRC mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32
                    ")",
                    stored, computed);
      *why = buf;
    }
    return false;
  }
  rec.seq = get_le64(h + 8);
  rec.offset = off;
  rec.payload = std::string_view(h + journal_header_size, size);
  rec.continues = (word & journal_batch_continues) != 0;
  rec.end = off + journal_header_size + size;
  return true;
}

// The first offset after `bad` holding a valid record with a seq above
// `prev_seq` (the last valid record's before the bad one): proof that the
// bad record is not a torn tail.
std::optional<size_t> find_valid_after(std::string_view data, size_t bad,
                                       uint64_t prev_seq) {
  decoded_record rec;
  for (size_t off = bad + 1; off + journal_header_size <= data.size(); ++off) {
    const char* h = data.data() + off;
    // The cheap checks first: most offsets fail them.
    const uint32_t size = get_le32(h) & ~journal_batch_continues;
    if (size > journal_max_payload
        || size > data.size() - off - journal_header_size)
      continue;
    if (get_le64(h + 8) <= prev_seq)
      continue;
    if (decode_at(data, off, rec, nullptr))
      return off;
  }
  return std::nullopt;
}

// One segment (or any journal file) decoded: the one place that decides what
// is valid, for open() and dump_journal() alike.
struct segment_scan {
  std::vector<decoded_record> records; // every valid record before a bad one
  size_t complete = 0;                 // records[0, complete): whole batches
  size_t complete_end = 0;             // where the last whole batch ends
  bool bad = false; // a bad record, or the file ends inside a batch
  size_t bad_offset = 0;
  std::string why;
  // The bad record is whole, its CRC valid, its seq out of order: no torn
  // write makes that.
  bool intact = false;
  std::optional<size_t> valid_after; // a valid record after the bad one
};

segment_scan scan_segment(std::string_view data) {
  segment_scan s;
  size_t off = 0;
  uint64_t prev_seq = 0;
  while (off < data.size()) {
    decoded_record rec;
    std::string why;
    if (!decode_at(data, off, rec, &why)) {
      s.bad = true;
      s.bad_offset = off;
      s.why = std::move(why);
      break;
    }
    // The highest seq is never written (append() stops below it): after it
    // the next seq would wrap to 0 and every later record would be refused
    // as out of order (found by fuzz/journal.cpp).
    if (rec.seq <= prev_seq || rec.seq == max_seq) {
      s.bad = true;
      s.intact = true;
      s.bad_offset = off;
      s.why = rec.seq == max_seq ? "seq " + std::to_string(rec.seq)
                                     + " leaves no seq to follow"
              : prev_seq == 0    ? std::string("seq 0")
                                 : "seq " + std::to_string(rec.seq)
                                     + " does not follow seq "
                                     + std::to_string(prev_seq);
      break;
    }
    s.records.push_back(rec);
    prev_seq = rec.seq;
    off = rec.end;
    if (!rec.continues) {
      s.complete = s.records.size();
      s.complete_end = off;
    }
  }
  if (!s.bad && s.complete < s.records.size()) {
    s.bad = true;
    s.bad_offset = data.size();
    s.why = "the file ends inside the batch that begins at offset "
            + std::to_string(s.records[s.complete].offset);
  }
  if (s.bad && s.bad_offset < data.size())
    s.valid_after = find_valid_after(data, s.bad_offset, prev_seq);
  return s;
}

// -- open: repairs --------------------------------------------------------------

// Moves a corrupt segment aside and puts `prefix` (its whole batches before
// the bad record) in its place: write path.tmp, fsync; link path to the
// corrupt name; rename path.tmp over path; fsync the directory. At every
// instant `path` holds the original or the prefix. Returns the corrupt
// file's name, or an empty string with `error` (the segment is then as it
// was).
std::string quarantine(const std::string& path, const std::string& dir,
                       std::string_view prefix, const step_fn& step,
                       std::string& error) {
  const std::string tmp = path + ".tmp";
  auto write_prefix = [&](int fd, int& err) {
    return write_all(fd, prefix.data(), prefix.size(), err);
  };
  if (!write_temp_file(tmp, write_prefix, error))
    return {};
  // Whatever fails from here leaves the segment as it was and path.tmp
  // removed.
  auto fail_tmp = [&](std::string msg) {
    ::unlink(tmp.c_str());
    error = std::move(msg);
    return std::string();
  };

  bool moved = false;
  std::string link_error;
  auto target = link_aside(path, path, moved, link_error);
  if (target.empty())
    return fail_tmp(link_error);
  step(journal_step::quarantined);

  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    // Undo the move aside: the segment stays as it was.
    if (moved)
      ::rename(target.c_str(), path.c_str());
    else
      ::unlink(target.c_str());
    return fail_tmp(sys_error("rename", tmp, path, err));
  }
  step(journal_step::prefix_rewritten);

  std::string sync_error;
  if (!fsync_dir(dir, sync_error))
    spdlog::warn("journal {}: {}", path, sync_error);
  return target;
}

struct segment_info {
  bool exists = false;
  std::vector<journal_record> records; // whole batches, seq > snapshot_seq
  uint64_t first_seq = 0;              // of its whole batches (0: none)
  uint64_t last_seq = 0;
  uint64_t size = 0;       // bytes of whole batches
  bool cut_failed = false; // the torn tail is still there
  std::string unusable;    // corruption that could not be moved aside
};

enum class segment_outcome { ok, missing, unreadable };

// Reads, validates and repairs one segment.
segment_outcome load_segment(const std::string& path, const std::string& dir,
                             uint64_t snapshot_seq, const step_fn& step,
                             journal_replay& out, segment_info& info,
                             std::string& error) {
  std::string data;
  switch (read_whole_file(path, data, error)) {
    case read_outcome::missing:
      return segment_outcome::missing;
    case read_outcome::failed:
      return segment_outcome::unreadable;
    case read_outcome::ok:
      break;
  }
  info.exists = true;
  auto scan = scan_segment(data);
  for (size_t i = 0; i < scan.complete; ++i) {
    const auto& r = scan.records[i];
    if (info.first_seq == 0)
      info.first_seq = r.seq;
    info.last_seq = r.seq;
    if (r.seq > snapshot_seq)
      info.records.push_back({r.seq, std::string(r.payload)});
  }
  info.size = scan.complete_end;
  if (!scan.bad)
    return segment_outcome::ok;

  // The bad record, and the records of its batch before it.
  std::string what = scan.why;
  if (scan.bad_offset != scan.complete_end
      && scan.bad_offset != data.size())
    what = "bad record at offset " + std::to_string(scan.bad_offset) + ": "
           + what + ", with the records of its batch before it";

  if (!scan.valid_after && !scan.intact) {
    // Nothing valid after it: the tail of an append that did not complete.
    std::string cut_error;
    if (!cut_file(path, scan.complete_end, cut_error)) {
      spdlog::error("journal {}: cannot cut the torn record at offset {} "
                    "({}): {}",
                    path, scan.complete_end, what, cut_error);
      info.cut_failed = true;
      return segment_outcome::ok;
    }
    step(journal_step::truncated);
    spdlog::warn("journal {}: cut a torn record at offset {} ({}; {} bytes "
                 "removed)",
                 path, scan.complete_end, what,
                 data.size() - scan.complete_end);
    out.truncated.push_back(path + " at offset "
                            + std::to_string(scan.complete_end));
    return segment_outcome::ok;
  }

  // A valid record follows (or the bad one is whole): corruption, not a
  // crash.
  const std::string evidence = scan.valid_after
                                 ? "a valid record follows at offset "
                                     + std::to_string(*scan.valid_after)
                                 : std::string("the record itself is whole");
  std::string q_error;
  auto target = quarantine(path, dir,
                           std::string_view(data).substr(0, scan.complete_end),
                           step, q_error);
  if (target.empty()) {
    spdlog::error("journal {}: corrupt record at offset {} ({}); {}; the "
                  "segment could not be moved aside: {}; only the {} records "
                  "before it are replayed",
                  path, scan.bad_offset, scan.why, evidence, q_error,
                  scan.complete);
    info.unusable = "journal " + path + " has a corrupt record at offset "
                    + std::to_string(scan.bad_offset)
                    + " and could not be moved aside (" + q_error + ")";
    return segment_outcome::ok;
  }
  spdlog::error("journal {}: corrupt record at offset {} ({}); {}; moved the "
                "segment aside to {} and kept the {} records before it ({} "
                "bytes)",
                path, scan.bad_offset, scan.why, evidence, target,
                scan.complete, scan.complete_end);
  out.quarantined.push_back(std::move(target));
  return segment_outcome::ok;
}

} // namespace

const char* to_string(journal_step x) {
  switch (x) {
    case journal_step::append_started:
      return "append_started";
    case journal_step::append_partly_written:
      return "append_partly_written";
    case journal_step::append_written:
      return "append_written";
    case journal_step::append_synced:
      return "append_synced";
    case journal_step::next_created:
      return "next_created";
    case journal_step::next_dir_synced:
      return "next_dir_synced";
    case journal_step::main_renamed:
      return "main_renamed";
    case journal_step::next_renamed:
      return "next_renamed";
    case journal_step::rotation_dir_synced:
      return "rotation_dir_synced";
    case journal_step::truncated:
      return "truncated";
    case journal_step::quarantined:
      return "quarantined";
    case journal_step::prefix_rewritten:
      return "prefix_rewritten";
  }
  return "?";
}

journal_file::journal_file(std::string dir, std::string base_name)
  : dir_(std::move(dir)) {
  main_path_ = dir_;
  if (!main_path_.empty() && main_path_.back() != '/')
    main_path_ += '/';
  main_path_ += base_name;
  main_path_ += ".journal";
  prev_path_ = main_path_ + ".prev";
  next_path_ = main_path_ + ".next";
}

journal_file::~journal_file() {
  close_active();
}

void journal_file::on_step(std::function<void(journal_step)> hook) {
  hook_ = std::move(hook);
}

void journal_file::step(journal_step x) {
  if (hook_)
    hook_(x);
}

void journal_file::close_active() noexcept {
  if (fd_ >= 0) {
    close_fd(fd_);
    fd_ = -1;
  }
}

bool journal_file::repair(std::string& error) {
  if (fd_ < 0) {
    error = "journal " + main_path_ + " is not open";
    return false;
  }
  if (!unusable_.empty()) {
    error = unusable_;
    return false;
  }
  if (need_truncate_) {
    std::string cut_error;
    if (!cut_fd(fd_, active_bytes_, active_path(), cut_error)) {
      error = "journal " + active_path() + " still holds a failed write: "
              + cut_error;
      return false;
    }
    need_truncate_ = false;
  }
  if (need_dir_sync_) {
    std::string sync_error;
    if (!fsync_dir(dir_, sync_error)) {
      error = "journal " + active_path() + " is not durable yet: "
              + sync_error;
      return false;
    }
    need_dir_sync_ = false;
  }
  return true;
}

bool journal_file::open(uint64_t snapshot_seq, journal_replay& out,
                        std::string& error) {
  close_active();
  out = journal_replay {};
  next_seq_ = snapshot_seq + 1;
  active_bytes_ = 0;
  last_main_seq_ = 0;
  rotation_pending_ = false;
  need_truncate_ = false;
  need_dir_sync_ = false;
  unusable_.clear();
  if (!ensure_dir(dir_, error))
    return false;
  bool dir_changed = false;

  // Leftovers of a segment rewrite that crashed.
  for (const auto* path : {&prev_path_, &main_path_, &next_path_}) {
    const auto leftover = *path + ".tmp";
    std::string unlink_error;
    if (remove_if_exists(leftover, unlink_error)) {
      dir_changed = true;
      spdlog::info("journal: removed leftover temporary file {}", leftover);
      out.removed.push_back(leftover);
    } else if (!unlink_error.empty()) {
      spdlog::warn("journal: cannot remove leftover temporary file {}: {}",
                   leftover, unlink_error);
    }
  }

  struct stat st {};
  rotation_pending_ = ::lstat(next_path_.c_str(), &st) == 0 || errno != ENOENT;
  out.rotation_pending = rotation_pending_;
  const std::string* paths[3] = {&prev_path_, &main_path_, &next_path_};
  const int active = rotation_pending_ ? 2 : 1;
  segment_info segs[3];
  const step_fn step_hook = [this](journal_step x) { step(x); };
  for (int i = 0; i < 3; ++i) {
    std::string read_error;
    auto outcome = load_segment(*paths[i], dir_, snapshot_seq, step_hook, out,
                                segs[i], read_error);
    if (outcome != segment_outcome::unreadable)
      continue;
    if (i == active) {
      error = "journal: " + read_error;
      return false;
    }
    spdlog::error("journal: {}; that segment is not replayed", read_error);
  }

  // Every segment's records above the snapshot, in seq order.
  std::vector<journal_record*> all;
  uint64_t highest = snapshot_seq;
  for (auto& s : segs) {
    highest = std::max(highest, s.last_seq);
    for (auto& r : s.records)
      all.push_back(&r);
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const journal_record* a, const journal_record* b) {
                     return a->seq < b->seq;
                   });
  uint64_t expected = snapshot_seq + 1;
  for (size_t i = 0; i < all.size(); ++i) {
    if (i > 0 && all[i]->seq == all[i - 1]->seq)
      continue; // the same seq in two segments: the first one's
    if (all[i]->seq != expected) {
      out.gap = true;
      size_t ignored = 0;
      for (size_t k = i; k < all.size(); ++k)
        if (k == i || all[k]->seq != all[k - 1]->seq)
          ++ignored;
      spdlog::error("journal {}: gap after seq {}: the next record found has "
                    "seq {}; {} records from there on are not replayed",
                    main_path_, expected - 1, all[i]->seq, ignored);
      break;
    }
    out.records.push_back(std::move(*all[i]));
    ++expected;
  }
  out.last_seq = expected - 1;
  // After a gap, new records go above every seq on disk: a seq is never
  // written twice with different contents.
  next_seq_ = std::max(out.last_seq, highest) + 1;
  if (rotation_pending_)
    last_main_seq_ = segs[2].first_seq != 0 ? segs[2].first_seq - 1
                                            : next_seq_ - 1;

  // The active segment, for appending at its end.
  const std::string& path = *paths[active];
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    error = sys_error("open", path, errno);
    return false;
  }
  if (::fstat(fd_, &st) != 0) {
    error = sys_error("fstat", path, errno);
    close_active();
    return false;
  }
  active_bytes_ = static_cast<uint64_t>(st.st_size);
  if (segs[active].cut_failed) {
    active_bytes_ = segs[active].size;
    need_truncate_ = true;
  }
  unusable_ = segs[active].unusable;
  if (!segs[active].exists)
    dir_changed = true;
  if (dir_changed) {
    std::string sync_error;
    if (!fsync_dir(dir_, sync_error)) {
      spdlog::warn("journal {}: {}", path, sync_error);
      if (!segs[active].exists)
        need_dir_sync_ = true;
    }
  }
  return true;
}

bool journal_file::append(const std::vector<std::string_view>& payloads,
                          std::string& error) {
  if (payloads.empty())
    return true;
  if (!repair(error))
    return false;
  const std::string path = active_path();
  // next_seq_ is 0 when the snapshot's own seq was the highest (it wrapped).
  if (next_seq_ == 0 || payloads.size() > max_seq - next_seq_) {
    error = "journal " + path + ": no sequence numbers left after "
            + std::to_string(next_seq_ - 1);
    return false;
  }
  size_t total = 0;
  for (size_t i = 0; i < payloads.size(); ++i) {
    if (payloads[i].size() > journal_max_payload) {
      error = "journal " + path + ": record " + std::to_string(i + 1) + " of "
              + std::to_string(payloads.size()) + " has "
              + std::to_string(payloads[i].size())
              + " bytes, more than the maximum "
              + std::to_string(journal_max_payload);
      return false;
    }
    total += journal_header_size + payloads[i].size();
  }
  std::string buf;
  buf.reserve(total);
  for (size_t i = 0; i < payloads.size(); ++i)
    encode_record(buf, next_seq_ + i, payloads[i], i + 1 < payloads.size());

  const uint64_t before = active_bytes_;
  auto fail = [&](std::string msg) {
    std::string cut_error;
    if (!cut_fd(fd_, before, path, cut_error)) {
      need_truncate_ = true;
      msg += "; and cutting it back failed: " + cut_error
             + " (appends are refused until the cut succeeds)";
    }
    error = "journal append: " + msg;
    return false;
  };
  step(journal_step::append_started);
  int err = 0;
  // Split in two only for the crash-point tests.
  const size_t first = hook_ ? buf.size() / 2 : buf.size();
  if (!write_all(fd_, buf.data(), first, err))
    return fail(sys_error("write", path, err));
  if (hook_) {
    step(journal_step::append_partly_written);
    if (!write_all(fd_, buf.data() + first, buf.size() - first, err))
      return fail(sys_error("write", path, err));
  }
  step(journal_step::append_written);
  if (sync_ && ::fdatasync(fd_) != 0)
    return fail(sys_error("fdatasync", path, errno));
  active_bytes_ = before + buf.size();
  next_seq_ += payloads.size();
  step(journal_step::append_synced);
  return true;
}

bool journal_file::begin_rotation(std::string& error) {
  if (fd_ < 0) {
    error = "journal " + main_path_ + " is not open";
    return false;
  }
  if (rotation_pending_)
    return true;
  if (!repair(error))
    return false;
  // No O_EXCL: an empty .next left by a begin whose directory fsync failed
  // is taken over.
  int fd = ::open(next_path_.c_str(),
                  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = sys_error("open", next_path_, errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    error = sys_error("fstat", next_path_, errno);
    close_fd(fd);
    return false;
  }
  if (st.st_size != 0) {
    error = "journal " + next_path_ + " exists and is not empty ("
            + std::to_string(st.st_size) + " bytes)";
    close_fd(fd);
    return false;
  }
  step(journal_step::next_created);
  if (!fsync_dir(dir_, error)) {
    // Appends stay on the main segment; the empty .next is harmless (taken
    // over by the next begin, or by open() as a pending rotation).
    error = "journal rotation not begun: " + error;
    close_fd(fd);
    return false;
  }
  close_active();
  fd_ = fd;
  active_bytes_ = 0;
  last_main_seq_ = next_seq_ - 1;
  rotation_pending_ = true;
  step(journal_step::next_dir_synced);
  return true;
}

bool journal_file::finish_rotation(std::string& error) {
  if (fd_ < 0) {
    error = "journal " + main_path_ + " is not open";
    return false;
  }
  if (!rotation_pending_) {
    error = "journal " + main_path_ + ": no rotation is pending";
    return false;
  }
  if (::rename(main_path_.c_str(), prev_path_.c_str()) != 0) {
    int err = errno;
    // Missing: an earlier finish crashed between its two renames.
    if (err != ENOENT) {
      error = sys_error("rename", main_path_, prev_path_, err);
      return false;
    }
  }
  step(journal_step::main_renamed);
  if (::rename(next_path_.c_str(), main_path_.c_str()) != 0) {
    error = sys_error("rename", next_path_, main_path_, errno);
    return false; // still pending: a later finish completes it
  }
  rotation_pending_ = false;
  last_main_seq_ = 0;
  step(journal_step::next_renamed);
  if (!fsync_dir(dir_, error)) {
    error = "journal rotation done but not durable: " + error;
    return false;
  }
  step(journal_step::rotation_dir_synced);
  return true;
}

int dump_journal(const std::string& path, std::ostream& out,
                 std::ostream& err) {
  std::string data;
  std::string why;
  switch (read_whole_file(path, data, why)) {
    case read_outcome::missing:
      err << path << ": " << std::strerror(ENOENT) << '\n';
      return 1;
    case read_outcome::failed:
      err << why << '\n';
      return 1;
    case read_outcome::ok:
      break;
  }
  auto scan = scan_segment(data);
  for (const auto& r : scan.records) {
    out << "{\"seq\":" << r.seq << ",\"offset\":" << r.offset
        << ",\"record\":";
    if (r.payload.empty())
      out << "null";
    else
      out.write(r.payload.data(), static_cast<std::streamsize>(r.payload.size()));
    out << "}\n";
  }
  out.flush();
  if (!scan.bad)
    return 0;
  err << path << ": bad record at offset " << scan.bad_offset << ": "
      << scan.why;
  if (scan.valid_after)
    err << " (a valid record follows at offset " << *scan.valid_after
        << ": corruption)";
  else if (scan.intact)
    err << " (a whole record out of order: corruption)";
  else
    err << " (nothing valid after it: a torn tail)";
  err << '\n';
  return 1;
}

} // namespace vb::storage
