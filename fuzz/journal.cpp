// Fuzz target journal: bytes as journal segments (bot_providers.journal,
// lobbies.journal), through storage::journal_file::open (framing, CRCs,
// torn tails cut, corrupt segments moved aside, the merge in seq order) and
// the replay of each record onto the state (model/journal_codec.hpp), as at
// start-up, and through dump_journal (--dump-journal). docs/fuzzing.md.
//
// Input: byte 0 flags: bit 0 lobbies (else providers); bit 1 fix the CRCs
// (journal_bytes.hpp) so that payloads get replayed; bits 2-3 where the
// bytes go: 0 the main segment, 1 .prev, 2 .next (a pending rotation),
// 3 split in two at byte 2's fraction, .prev and main; bit 4 parse the
// records on two threads first (lobby_replay::preparse). Byte 1: the
// snapshot's seq (0-239, or 240-255 for the 16 highest uint64 values).
// The rest: the file.
//
// Invariants: the records replayed ascend from snapshot_seq + 1 without a
// hole; what open() repaired stays repaired (a second open cuts and moves
// nothing, and finds the same records); a record appended after open is
// found by the next open.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_util.hpp"
#include "fuzz/quiet_logs.hpp"
#include "fuzz/journal_bytes.hpp"
#include "model/journal_codec.hpp"
#include "storage/journal.hpp"

namespace {

constexpr uint64_t max_seq = std::numeric_limits<uint64_t>::max();

void check_replay(const vb::storage::journal_replay& r, uint64_t snapshot_seq) {
  uint64_t expected = snapshot_seq + 1; // wraps to 0 for the highest
  for (auto& rec : r.records)
    VB_FUZZ_CHECK(rec.seq == expected++);
  VB_FUZZ_CHECK(r.last_seq == expected - 1);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vb::fuzz::input in(data, size);
  auto flags = in.byte();
  // 0-239, or one of the 16 highest seqs (a snapshot's journal_seq is
  // any uint64 the file says).
  uint64_t snapshot_seq = in.byte();
  if (snapshot_seq >= 240)
    snapshot_seq = std::numeric_limits<uint64_t>::max() - (255 - snapshot_seq);
  auto split = in.byte();
  std::string file(in.rest());
  bool lobbies = flags & 1;
  if (flags & 2)
    vb::fuzz::fix_crcs(file);

  const auto& dir = vb::fuzz::scratch_dir();
  vb::fuzz::clear_scratch();
  std::string base = lobbies ? "lobbies" : "bot_providers";
  std::string main = dir + "/" + base + ".journal";
  std::string_view all(file);
  switch ((flags >> 2) & 3) {
    case 0:
      vb::fuzz::put_file(main, &all);
      break;
    case 1:
      vb::fuzz::put_file(main + ".prev", &all);
      break;
    case 2:
      vb::fuzz::put_file(main + ".next", &all);
      break;
    default: {
      auto cut = file.size() * split / 256;
      auto prev = all.substr(0, cut);
      auto rest = all.substr(cut);
      vb::fuzz::put_file(main + ".prev", &prev);
      vb::fuzz::put_file(main, &rest);
    }
  }

  // --dump-journal reads without changing anything.
  {
    std::ostringstream out;
    std::ostringstream err;
    auto path = ((flags >> 2) & 3) == 1 ? main + ".prev"
                : ((flags >> 2) & 3) == 2 ? main + ".next"
                                           : main;
    int rc = vb::storage::dump_journal(path, out, err);
    VB_FUZZ_CHECK(rc == 0 || !err.str().empty());
  }

  vb::storage::journal_replay r;
  uint64_t next_seq = 0;
  bool append_ok = false;
  {
    vb::storage::journal_file j(dir, base);
    std::string error;
    VB_FUZZ_CHECK(j.open(snapshot_seq, r, error));
    check_replay(r, snapshot_seq);
    next_seq = j.next_seq();
    // Seqs run out only at the top: then appends are refused, never wrap.
    append_ok = next_seq != 0 && next_seq != max_seq;
    if (append_ok)
      VB_FUZZ_CHECK(next_seq > r.last_seq);
    std::string why;
    if (lobbies) {
      vb::lobby_replay replay({});
      if (flags & 16) {
        std::vector<const std::string*> ps;
        for (auto& rec : r.records)
          ps.push_back(&rec.payload);
        replay.preparse(ps);
      }
      for (auto& rec : r.records)
        if (!replay.apply(rec.payload, why))
          VB_FUZZ_CHECK(!why.empty());
      replay.result();
    } else {
      vb::provider_replay replay({});
      for (auto& rec : r.records)
        if (!replay.apply(rec.payload, why))
          VB_FUZZ_CHECK(!why.empty());
      replay.result();
    }
    // One more record, as the owner would append after start-up.
    VB_FUZZ_CHECK(j.append({std::string_view("{\"op\":\"fuzz\"}")}, error)
                  == append_ok);
  }
  if (!append_ok)
    return 0;

  // Open again: the repairs held, and the appended record is there.
  vb::storage::journal_file j(dir, base);
  vb::storage::journal_replay again;
  std::string error;
  VB_FUZZ_CHECK(j.open(snapshot_seq, again, error));
  VB_FUZZ_CHECK(again.truncated.empty());
  VB_FUZZ_CHECK(again.quarantined.empty());
  check_replay(again, snapshot_seq);
  if (!r.gap) {
    VB_FUZZ_CHECK(again.records.size() == r.records.size() + 1);
    for (size_t i = 0; i < r.records.size(); ++i)
      VB_FUZZ_CHECK(again.records[i].seq == r.records[i].seq
                    && again.records[i].payload == r.records[i].payload);
    VB_FUZZ_CHECK(again.records.back().seq == next_seq);
    VB_FUZZ_CHECK(again.records.back().payload == "{\"op\":\"fuzz\"}");
  } else {
    // The record after the gap is not replayed, and neither is the new one.
    VB_FUZZ_CHECK(again.gap && again.records.size() == r.records.size());
  }
  return 0;
}
