// The embedded store (SPEC §3): one per durable file (bot_providers,
// lobbies). It appends each batch of changes to the journal with one write
// and one fdatasync (group commit: the batches that arrive during a sync
// share the next one), keeps the image its next snapshot holds, and compacts
// the journal into a new snapshot when it passes --journal-max-bytes: the
// snapshot is rendered and written by a snapshot writer on another thread
// while appends go on (docs/journal.md). Spawned detached.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/typed_response_promise.hpp>

#include "actors/interfaces.hpp"

namespace vb {

struct server_stats;
namespace storage {
class journal_file;
}
}

namespace caf {
class actor_system;
}

namespace vb {

/// The entries of an image in the order they were first set (by order).
using image_entries = std::map<uint64_t, image_entry_ptr>;

/// The entries of a store's image in the order they were first set: what a
/// compaction writes. Plain data, no actors. A capture freezes the entries
/// in O(1) and hands them out; changes made while they are out go to an
/// overlay, merged back by settle() once the compaction is done, so a
/// compaction never stalls the store's appends with a copy of the image.
class store_image {
public:
  void apply(const image_op& op);
  /// The entries as of now, shared and immutable until settle().
  std::shared_ptr<const image_entries> capture();
  /// The captured entries are no longer read: merge what changed since.
  void settle();
  bool frozen() const noexcept {
    return frozen_;
  }
  size_t size() const noexcept {
    return by_key_.size();
  }
  void reserve(size_t n) {
    by_key_.reserve(n);
  }

private:
  std::shared_ptr<image_entries> base_ = std::make_shared<image_entries>();
  /// While frozen: entries set since the capture, by order (new ones and
  /// replacements of captured ones), and captured ones removed since.
  image_entries overlay_;
  std::set<uint64_t> erased_;
  bool frozen_ = false;
  /// By the entry's id (a view of the entry's own string).
  std::unordered_map<std::string_view, uint64_t> by_key_;
  uint64_t next_ = 0;
};

/// Renders a snapshot from an image holding every record up to `seq`.
using image_renderer
  = std::function<std::string(const image_entries&, uint64_t)>;

/// The snapshot text of providers, and of lobbies (members under their
/// lobby), from an image.
std::string render_providers(const image_entries& image, uint64_t seq);
std::string render_lobbies(const image_entries& image, uint64_t seq);

/// What start-up hands a journal store: the journal, opened and replayed,
/// and the image of the state it loaded.
struct journal_store_seed {
  std::string dir;
  std::string file_name; // the snapshot: bot_providers.json, lobbies.json
  std::shared_ptr<storage::journal_file> journal;
  store_image image;
  image_renderer render;
  /// A journal past this size is compacted.
  uint64_t max_bytes = 16 * 1024 * 1024;
};

/// Parses a snapshot's text and says its journal_seq (error text on failure).
using snapshot_decoder
  = std::function<bool(const std::string&, uint64_t&, std::string&)>;
/// Applies one journal record (error text on failure).
using record_replayer = std::function<bool(const std::string&, std::string&)>;
/// Sees every record to replay before the first is applied.
using record_preparser = std::function<void(std::vector<const std::string*>)>;
/// Loads an owner's durable state (blocking, for start-up): the newest valid
/// snapshot (`decode` parses one and says its journal_seq), then the journal
/// records after it (`replay` applies one). Fills `seed` for the store.
/// Returns false only when the journal cannot be opened at all.
bool load_durable(const std::string& dir, const std::string& file_name,
                  const snapshot_decoder& decode, const record_replayer& replay,
                  journal_store_seed& seed, server_stats* stats,
                  const record_preparser& preparse = {});

template <class Replay, class = void>
struct has_preparse : std::false_type {};
template <class Replay>
struct has_preparse<Replay, std::void_t<decltype(std::declval<Replay&>().preparse(
                              std::declval<std::vector<const std::string*>>()))>>
  : std::true_type {};

/// An owner's values as load_durable finds them, one shape for every owner:
/// the newest valid snapshot's values (`decode`: decode_providers, ...),
/// then a `Replay` made of them applies the journal's records (and, if it
/// has preparse(), sees all their payloads first).
template <class Replay, class T>
std::vector<T>
load_values(const std::string& dir, const std::string& file_name,
            bool (*decode)(const std::string&, std::vector<T>&, std::string&,
                           uint64_t*),
            journal_store_seed& seed, server_stats* stats) {
  std::vector<T> base;
  std::unique_ptr<Replay> replay;
  auto started = [&]() -> Replay& {
    if (!replay)
      replay = std::make_unique<Replay>(std::move(base));
    return *replay;
  };
  std::function<void(std::vector<const std::string*>)> preparse;
  if constexpr (has_preparse<Replay>::value)
    preparse = [&](std::vector<const std::string*> payloads) {
      started().preparse(std::move(payloads));
    };
  load_durable(
    dir, file_name,
    [&](const std::string& text, uint64_t& seq, std::string& why) {
      base.clear();
      return decode(text, base, why, &seq);
    },
    [&](const std::string& record, std::string& why) {
      return started().apply(record, why);
    },
    seed, stats, preparse);
  return replay ? replay->result() : std::move(base);
}

struct journal_store_state {
  static inline constexpr const char* name = "journal-store";

  struct waiting {
    size_t changes = 0; // of `pending`, in order
    caf::typed_response_promise<uint64_t> rp;
    bool has_rp = false;
  };

  store_actor::pointer self = nullptr;
  std::shared_ptr<journal_store_seed> seed;
  std::shared_ptr<server_stats> stats;
  snapshot_writer_actor writer;
  std::vector<store_change> pending;
  std::vector<waiting> waiters;
  bool flush_scheduled = false;
  bool compacting = false;
  std::chrono::steady_clock::time_point compaction_started;
  /// No compaction is tried before this (after a failed one).
  std::chrono::steady_clock::time_point retry_at;
  /// The last durable sequence number.
  uint64_t last_seq = 0;

  /// Queues a batch; `rp` answered once it is durable (or failed).
  void enqueue(store_batch batch, waiting w);
  /// Appends what is queued (one write, one fdatasync) and answers it.
  /// Returns false when the append failed.
  bool write_pending();
  /// Starts a compaction when the journal is past its size (or a crash left
  /// one unfinished).
  void maybe_compact();
  /// Starts one now; false when the rotation cannot even begin.
  bool start_compaction();
  void compacted(bool ok, uint64_t seq, const std::string& error);
  /// Final snapshots asked for (shutdown): answered after the next
  /// compaction that starts after they were asked.
  std::vector<caf::typed_response_promise<uint64_t>> final_waiting;
  std::vector<caf::typed_response_promise<uint64_t>> final_running;
};

store_actor::behavior_type
journal_store(store_actor::stateful_pointer<journal_store_state> self,
              std::shared_ptr<journal_store_seed> seed,
              snapshot_writer_actor writer, std::shared_ptr<server_stats> stats);

/// A file's store and the snapshot writer of its compactions.
struct store_handles {
  store_actor store;
  snapshot_writer_actor writer;
};

/// Spawns them, as the server does (detached) and the tests do (not).
store_handles spawn_journal_store(caf::actor_system& sys,
                                  std::shared_ptr<journal_store_seed> seed,
                                  std::shared_ptr<server_stats> stats,
                                  bool detached = true);

} // namespace vb
