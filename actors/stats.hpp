// Counters shared between the actors that change them and the front end
// that reports them (/api/health, /metrics). Atomics only: each counter has
// one writer, readers take a relaxed look. Nothing here takes a lock, so
// recording on a hot path costs a few relaxed atomic adds.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

namespace vb {

/// A latency histogram with fixed buckets (seconds), recorded lock-free.
/// Buckets are kept non-cumulative; a reader adds them up. The count is the
/// sum of the buckets, so count and buckets always agree in a scrape.
struct latency_histogram {
  /// Upper bounds in seconds; a last bucket (+Inf) follows.
  static constexpr std::array<double, 14> bounds{
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,    1,     2.5,  5,     10};

  std::array<std::atomic<uint64_t>, bounds.size() + 1> buckets{};
  std::atomic<uint64_t> sum_ns{0};

  void observe(std::chrono::nanoseconds d) {
    auto ns = d.count() < 0 ? 0 : static_cast<uint64_t>(d.count());
    auto s = static_cast<double>(ns) / 1e9;
    std::size_t i = 0;
    while (i < bounds.size() && s > bounds[i])
      ++i;
    buckets[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns.fetch_add(ns, std::memory_order_relaxed);
  }

  uint64_t count() const {
    uint64_t n = 0;
    for (auto& b : buckets)
      n += b.load(std::memory_order_relaxed);
    return n;
  }
};

/// Writes of one snapshot file.
struct snapshot_stats {
  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> failures{0};
  latency_histogram duration; // successful writes
};

/// The journal of one owner (SPEC §3): appends, compactions, start-up.
struct journal_stats {
  std::atomic<uint64_t> appends{0};   // batches appended (one fdatasync each)
  std::atomic<uint64_t> records{0};   // records in them
  std::atomic<uint64_t> failures{0};  // appends that failed (answered 503)
  std::atomic<uint64_t> bytes{0};     // size of the active segment now
  std::atomic<uint64_t> compactions{0};
  std::atomic<uint64_t> compaction_failures{0};
  std::atomic<uint64_t> quarantined{0}; // corrupt segments moved aside
  std::atomic<uint64_t> truncated{0};   // torn tails cut off at start-up
  latency_histogram sync;       // one append: write + fdatasync
  latency_histogram compaction; // one compaction: snapshot + rotation
};

/// Where the state lives (SPEC §8), for /api/health.
enum class store_state : int { embedded = 0, ok = 1, unavailable = 2 };

struct server_stats {
  /// Embedded, or the cluster store's availability (set by the membership).
  std::atomic<store_state> store{store_state::embedded};
  /// Cluster mode: until when (steady clock, ns) the lease renewed last is
  /// surely live: past it, the store is unavailable even before the
  /// membership's next look (an instance waking from a pause knows at once).
  std::atomic<int64_t> store_fresh_until_ns{0};
  /// Whether changes cannot be committed now (cluster mode only).
  bool store_unavailable() const {
    auto s = store.load(std::memory_order_relaxed);
    if (s == store_state::embedded)
      return false;
    if (s == store_state::unavailable)
      return true;
    auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
                 .count();
    return now > store_fresh_until_ns.load(std::memory_order_relaxed);
  }
  /// Whether this instance runs the cleanup sweeper: always in embedded
  /// mode; in cluster mode only while it holds the sweeper key in etcd.
  std::atomic<bool> sweeper{true};
  /// Cluster mode: transactions committed, and refused or failed (503).
  std::atomic<uint64_t> cluster_commits{0};
  std::atomic<uint64_t> cluster_failures{0};
  /// Cluster mode: changes of other instances applied from the watch.
  std::atomic<uint64_t> cluster_remote_changes{0};
  std::atomic<uint64_t> providers{0};        // registered now
  std::atomic<uint64_t> lobbies{0};          // existing now
  std::atomic<uint64_t> members{0};          // lobby members now
  std::atomic<uint64_t> evictions{0};        // providers evicted since start
  std::atomic<uint64_t> held_sweeps{0};      // sweeps held back by the guard
  std::atomic<uint64_t> snapshot_writes{0};  // snapshot writes since start
  std::atomic<uint64_t> snapshot_failures{0};
  std::atomic<uint64_t> snapshot_write_ns{0}; // total time spent writing
  // -- fleet (SPEC §7) --
  std::atomic<uint64_t> failovers{0};     // joins tried on a further provider
  std::atomic<uint64_t> redispatches{0};  // bot members moved to a new run
  std::atomic<uint64_t> orphaned{0};      // bot members orphaned now
  std::atomic<uint64_t> drains{0};        // drains started
  std::atomic<uint64_t> removed_answers{0}; // 410s to removed instances
  std::atomic<uint64_t> rate_limited{0};  // registrations answered 429
  std::atomic<uint64_t> late_acceptances{0}; // joins accepted too late, stopped
  std::atomic<uint64_t> stray_stops{0}; // runs no member held, stopped
  /// Bot members that left after their lobby's people did (the grace).
  std::atomic<uint64_t> empty_lobby_stops{0};
  std::atomic<uint64_t> idempotent_replays{0}; // joins answered from a key
  // Voice (SPEC §9).
  std::atomic<uint64_t> voice_peers{0};      // voice peers now
  std::atomic<uint64_t> signals_relayed{0};  // signals sent on to a peer
  std::atomic<uint64_t> signal_bytes{0};     // their data's bytes
  std::atomic<uint64_t> hellos_bad_token{0}; // hellos refused: bad_token
  std::atomic<uint64_t> hellos_voice_full{0}; // hellos refused: voice_full
  std::atomic<uint64_t> turn_credentials{0}; // TURN credentials handed out
  // -- provider gateway (SPEC §5) --
  std::atomic<uint64_t> tls_handshake_failures{0}; // connections refused at TLS
  // -- cluster port (SPEC §8) --
  std::atomic<uint64_t> cluster_tls_handshake_failures{0}; // to or from an instance

  /// Per file, for /metrics: the snapshot files by name, then any other.
  static constexpr std::array<std::string_view, 4> snapshot_files{
    "bot_providers.json", "lobbies.json", "idempotency.json", "other"};
  std::array<snapshot_stats, snapshot_files.size()> snapshots{};

  std::array<journal_stats, snapshot_files.size()> journals{};
  /// Snapshot files moved aside at start-up (corrupt), all files.
  std::atomic<uint64_t> quarantined_snapshots{0};

  journal_stats& journal(std::string_view file_name) {
    for (std::size_t i = 0; i + 1 < snapshot_files.size(); ++i)
      if (snapshot_files[i] == file_name)
        return journals[i];
    return journals.back();
  }

  snapshot_stats& snapshot(std::string_view file_name) {
    for (std::size_t i = 0; i + 1 < snapshot_files.size(); ++i)
      if (snapshot_files[i] == file_name)
        return snapshots[i];
    return snapshots.back();
  }
};

} // namespace vb
