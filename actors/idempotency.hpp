// The idempotency actor: owner of the Idempotency-Key records of joins
// (SPEC §7) and of idempotency.json / idempotency.journal. A key's first
// accepted join (a session) is kept for idempotency_ttl and answered again
// to every retry of the same request; a retry with another request gets
// idempotency_key_reused; an error answer is not kept (docs/http-api.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/actor_clock.hpp>
#include <caf/typed_response_promise.hpp>

#include "actors/interfaces.hpp"
#include "actors/journal_store.hpp"
#include "model/idempotency_codec.hpp"

namespace vb {

struct server_stats;

/// The file name of the idempotency keys' snapshot in the data directory.
inline constexpr const char* idempotency_file_name = "idempotency.json";

/// Loads the keys of `dir`: the newest valid snapshot, then the journal
/// records after it. Fills `seed` for the keys' store. Expired keys are
/// loaded too (the actor's first sweep deletes them durably). Blocking: call
/// it before the server serves.
std::vector<idempotency_entry>
load_idempotency_keys(const std::string& dir, journal_store_seed& seed,
                      server_stats* stats = nullptr);

/// The snapshot text of the keys, from their store's image.
std::string render_idempotency_keys(const image_entries& image, uint64_t seq);

struct idempotency_config {
  /// How long a key's answer is kept (idempotency_ttl).
  caf::timespan ttl = std::chrono::hours(24);
  /// How long a join may take at the directory: above the front end's own
  /// timeout and a dispatch with failover, so that a join the client gave up
  /// on is still remembered when it is accepted.
  caf::timespan join_timeout = std::chrono::seconds(60);
  /// How long the store has to make a record durable.
  caf::timespan store_timeout = std::chrono::seconds(60);
  /// How often expired keys are deleted.
  caf::timespan sweep_interval = std::chrono::seconds(60);
  /// At most this many keys are kept; past it, a new key pushes out the
  /// one that expires soonest (with a durable delete and a warning).
  std::size_t max_keys = 1'000'000;
  /// Expired keys deleted per store batch (a sweep writes as many batches
  /// as it needs, one after the other).
  std::size_t sweep_batch = 10'000;
};

struct idempotency_state {
  static inline constexpr const char* name = "idempotency";

  /// A remembered key.
  struct entry {
    std::string fingerprint;
    std::string lobby_id;
    session answer;
    double expires_at = 0; // unix seconds
    /// A delete of it is on its way to the store (swept, or pushed out).
    bool leaving = false;
  };

  /// A key whose first join is running: the requests waiting for it.
  struct joining {
    std::string fingerprint;
    std::vector<caf::typed_response_promise<session>> waiting;
  };

  idempotency_actor::pointer self = nullptr;
  idempotency_config config;
  lobby_directory_actor directory;
  store_actor store;
  std::shared_ptr<server_stats> stats;

  /// Every key the store holds (expired ones until they are swept).
  std::unordered_map<std::string, entry> keys;
  /// The same keys by expiry, soonest first: sweeps and the bound.
  std::set<std::pair<double, std::string>> by_expiry;
  /// Keys whose first join (or its record) is under way.
  std::unordered_map<std::string, joining> running;
  /// Entries marked `leaving`; puts on their way that add a new key.
  std::size_t leaving = 0;
  std::size_t adding = 0;
  /// True while a sweep's deletes are at the store: sweeps never overlap.
  bool sweeping = false;
  /// A warning about the bound was logged since the last sweep.
  bool warned_full = false;

  /// Unix seconds on the actor's clock: the wall clock at the start plus
  /// the actor clock's time since (so tests move it with virtual time).
  double now() const;
  double wall_start = 0;
  caf::actor_clock::time_point clock_start;

  void init(std::vector<idempotency_entry> initial);
  /// A join with a key: the first answer, a waiting promise, or a new join.
  caf::result<session> join(std::string key, std::string fingerprint,
                            std::string lobby_id, bot_join bj);
  /// The directory accepted the first join of `key`: its record, then the
  /// answer to everyone waiting.
  void accepted(const std::string& key, const std::string& lobby_id,
                session s);
  /// Answers everyone waiting for `key` (and forgets that it runs).
  void answer(const std::string& key, const caf::expected<session>& result);
  /// Marks room for one more key: the keys to delete first (the soonest to
  /// expire, past max_keys).
  std::vector<std::string> make_room(bool adds_key);
  void remember(idempotency_entry e);
  void forget(const std::string& key);
  void unmark(const std::vector<std::string>& ks);
  /// Deletes expired keys (durably, in batches).
  void sweep();
  /// Cluster mode: keys another instance answered first (remembered unless
  /// a live entry of the key is here), or forgot; with `resync`, keys the
  /// batch does not name are forgotten. Nothing is written.
  void apply_remote(const remote_batch& batch);
};

/// `initial` comes from load_idempotency_keys; `store` is their store.
idempotency_actor::behavior_type
idempotency(idempotency_actor::stateful_pointer<idempotency_state> self,
            lobby_directory_actor directory, store_actor store,
            std::vector<idempotency_entry> initial, idempotency_config config,
            std::shared_ptr<server_stats> stats);

} // namespace vb
