// The etcd store's state (cluster/store.cpp: commits, the watch, resyncs;
// cluster/claims.cpp: the reservations of joins' names). Private to
// cluster/.
#pragma once

#include <deque>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "cluster/internal.hpp"

namespace vb::cluster_detail {

/// The store with the messages it sends itself (etcd's answers).
using etcd_store_actor = store_actor::extend_with<claims_actor>::extend<
  caf::reacts_to<atom::peers, remote_owner_actor>, caf::reacts_to<txn_done>,
  caf::reacts_to<watch_msg>, caf::reacts_to<resync_done>, caf::reacts_to<tick>,
  caf::reacts_to<reserve_done>, caf::reacts_to<reserve_retry>,
  caf::reacts_to<release_done>, caf::reacts_to<release_retry>,
  caf::reacts_to<settle_done>, caf::reacts_to<settle_retry>>;

struct etcd_store_state {
  static inline constexpr const char* name = "etcd-store";

  struct queued {
    store_batch batch;
    caf::typed_response_promise<uint64_t> rp;
    bool has_rp = false;
    /// Sent in a transaction of its own (after a shared one failed on a
    /// condition: each batch's own conditions decide).
    bool solo = false;
  };

  struct reserve_job {
    caf::typed_response_promise<std::string> rp;
    std::string key;
    std::string session_id;
    std::chrono::steady_clock::time_point deadline;
    /// The value it puts; the mod revision of a stale one it takes over.
    std::string value;
    int64_t takeover = 0;
    /// Sent in a transaction of its own (after a shared one failed on a
    /// condition: each reservation's own conditions decide).
    bool solo = false;
  };
  std::unordered_map<uint64_t, reserve_job> reserving;
  uint64_t next_job = 0;
  /// Reservations wait here while one transaction of them is in flight;
  /// the next one takes every waiting name at once (design §4.3: the
  /// reservations of concurrent joins share a quorum commit).
  std::deque<uint64_t> reserve_queue;
  uint64_t reserve_txn = 0;            // its id; 0: none in flight
  std::vector<uint64_t> reserve_batch; // the jobs it carries
  /// The reservations this instance holds, by key: (session id, value), for
  /// the commit's compare and the release.
  std::unordered_map<std::string, std::pair<std::string, std::string>> held_names;

  etcd_store_actor::stateful_pointer<etcd_store_state> self = nullptr;
  std::shared_ptr<cluster_context> ctx;
  std::shared_ptr<server_stats> stats;
  std::string owner_name;
  std::string prefix;
  remote_owner_actor owner;
  /// Remote changes that came before the owner was named: kept for it.
  std::vector<remote_batch> early;
  std::deque<queued> queue;
  /// The transaction in flight: its id, what it answers, its keys.
  uint64_t next_txn = 0;
  uint64_t in_flight = 0;
  std::vector<queued> sent;
  std::unordered_set<std::string> sent_keys;
  /// The reservations the transaction in flight commits (key, session).
  std::vector<std::pair<std::string, std::string>> committing_names;
  /// The members whose leaves give their names back in the transaction in
  /// flight (its failure ops read them, in this order).
  std::vector<std::string> leaving_members;
  /// Watch events of keys in flight, held until the commit answers (its
  /// own events must not come back as someone else's).
  std::vector<etcd::watch_event> held;
  /// Keys this instance wrote, with the revision of that write: the watch
  /// event of a revision up to it is ours, or older than ours.
  std::unordered_map<std::string, int64_t> own_rev;
  std::vector<caf::typed_response_promise<uint64_t>> flush_waiting;
  int64_t last_rev = 0;
  uint64_t watch_id = 0;
  uint64_t watch_gen = 0;
  bool resyncing = false;
  bool stopping = false;

  void enqueue(store_batch batch, caf::typed_response_promise<uint64_t> rp,
               bool has_rp);

  void fail(std::vector<queued>& items, const std::string& why);

  void send_next();

  void committed(txn_done& d);

  /// A commit etcd did not answer, with joins in it: the first join's
  /// reservation is marked taken back (if it is still pending, the commit,
  /// which compares it, can never apply: failed), or it already holds the
  /// member (the commit applied: done). Retried while etcd does not answer.
  /// A failed transaction whose leaves found their members gone: sent
  /// again without giving their names back (true), or not that (false).
  bool forget_left_names(const etcd::txn_result& r);
  void settle(uint64_t id, int attempt);

  void settled(settle_done& d);

  void finish_commit(const etcd::txn_result& r);

  /// The transaction in flight is over: the events held for its keys go
  /// on (ours are recognised now), then the next one.
  void next_after_commit();

  /// Answers flushes once nothing is queued or in flight; stops when asked.
  void settle();

  /// Hands the other instances' changes among `events` to the owner.
  void forward(std::vector<etcd::watch_event>& events);

  void hand_over(remote_batch batch);

  void watch_from(int64_t revision);

  void watched(watch_msg& m);

  /// Takes a join's name for `session_id` (answered ""), or answers the
  /// session of the member that holds it; waits while another instance's
  /// join of it is pending.
  /// Queues job `id`'s reservation; sends the queue unless one is in flight.
  void reserve(uint64_t id);
  /// Sends the waiting reservations as one transaction.
  void send_reservations();

  void reserved(reserve_done& d);
  /// One reservation of a transaction that came back: `index` is its read
  /// among the failure ops (when it went alone).
  void settle_reservation(uint64_t id, const etcd::txn_result& r,
                          std::size_t index);

  /// Gives back a reservation no member holds; retried while etcd does
  /// not answer (a reservation left pending would hold the name until this
  /// instance's lease ends, or stale_reservation_s).
  void release(const std::string& key, const std::string& session_id,
               int attempt, bool lingering = false);

  void released(const release_done& d);

  void resync();

  void resynced(resync_done& d);
};

} // namespace vb::cluster_detail
