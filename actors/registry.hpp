// The registry: sole owner of provider state and of bot_providers.json.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor_clock.hpp>
#include <caf/response_promise.hpp>

#include "actors/interfaces.hpp"
#include "model/token_bucket.hpp"

namespace vb {

struct server_stats;

/// The file name of the provider snapshot in the data directory.
inline constexpr const char* providers_file_name = "bot_providers.json";

struct journal_store_seed;

/// Loads the providers of `dir`: the newest valid snapshot (ours or the
/// original Python server's format; corrupt generations moved aside), then
/// the journal records after it. Fills `seed` for the providers' store.
/// Blocking: call it before the server serves.
std::vector<provider> load_providers(const std::string& dir,
                                     journal_store_seed& seed,
                                     server_stats* stats = nullptr);

struct registry_config {
  /// Accepted provider keys; empty: registration needs no key.
  std::vector<std::string> provider_keys;
  /// How long the registry waits for its store to make a change durable.
  caf::timespan store_timeout = std::chrono::seconds(60);
  /// How often changes that need no acknowledgement (heartbeats) are written.
  caf::timespan flush_interval = std::chrono::seconds(5);
  /// The cleanup rule's stale_after: a provider's lease, and how long a
  /// tombstone is kept.
  caf::timespan stale_after = std::chrono::seconds(900);
  /// How long a drain lasts when the request names no timeout.
  caf::timespan drain_timeout = std::chrono::seconds(300);
  /// Registrations admitted per second (a token bucket, burst the same).
  double max_registrations_per_second = 1000;
  /// How long calls to the directory and the dispatcher may take.
  caf::timespan peer_timeout = std::chrono::seconds(60);
};

struct registry_state {
  static inline constexpr const char* name = "registry";

  /// What the registry knows of one provider.
  struct entry {
    /// Copy-on-write: snapshots and replies share it without copying.
    std::shared_ptr<const provider> value;
    /// The provider's JSON as the snapshot holds it, rendered on each
    /// change, so a write assembles text instead of rendering everyone.
    std::shared_ptr<const std::string> json;
    /// Monotonic time of the last sign of life; providers loaded from disk
    /// start at the registry's start, so server downtime does not count.
    caf::actor_clock::time_point seen;
    /// Registration order, for stable listings.
    uint64_t order = 0;
    /// Heartbeats so far (the suspect timer checks that one came).
    uint64_t beats = 0;
    /// Unix time of the last heartbeat (0: none yet), for lost runs of
    /// providers that announce no interval.
    double last_beat = 0;
  };

  /// A provider removed on purpose (SPEC §7): its instance gets 410 until
  /// `until`.
  struct tombstone {
    std::string instance_id;
    caf::actor_clock::time_point until;
  };

  /// An entry for a new value of a provider.
  static entry make_entry(provider value, caf::actor_clock::time_point seen,
                          uint64_t order);
  /// Replaces an entry's value (and its rendered JSON).
  static void set(entry& e, provider value);

  registry_actor::pointer self = nullptr;
  registry_config config;
  std::shared_ptr<server_stats> stats;

  std::unordered_map<std::string, entry> providers;
  /// (name, base_url) -> provider_id.
  std::map<std::pair<std::string, std::string>, std::string> by_endpoint;
  /// bot name -> ids of the providers offering it.
  std::unordered_map<std::string, std::set<std::string>> by_bot;
  uint64_t next_order = 0;
  /// Moves on every change a listing would show.
  uint64_t version = 1;
  /// The listing at `version`, built on demand and shared until it changes.
  mutable provider_catalog_ptr catalog_cache;
  std::mt19937_64 rng{std::random_device{}()};
  /// Removed instances, by provider id.
  std::unordered_map<std::string, tombstone> tombstones;
  /// The registration token bucket (made at the first registration, from
  /// config).
  std::optional<token_bucket> registrations;
  /// Told of fleet events (set once at start-up; null in some tests).
  lobby_directory_actor directory;
  dispatcher_actor dispatcher;

  /// Where changes are made durable; the registry applies a change only once
  /// the store answered (nothing unacknowledged is visible).
  store_actor store;
  /// Registrations on their way to the store, by endpoint: a second one of
  /// the same endpoint gets the same id.
  std::map<std::pair<std::string, std::string>, std::string> pending_endpoints;
  /// Providers seen (heartbeat, dispatch) since the last periodic record,
  /// and those whose catalog a heartbeat replaced.
  std::set<std::string> seen_since_flush;
  std::set<std::string> changed_since_flush;

  // -- state methods ---------------------------------------------------------

  void init(std::vector<provider> initial);
  caf::error check_key(const std::string& key) const;
  /// A registration as it will be once durable, and the old id of the same
  /// endpoint it replaces (or empty).
  struct planned {
    provider value;
    std::shared_ptr<const std::string> json;
    std::string replaces;
  };
  planned plan(const provider_registration& reg);
  /// Applies a durable registration; returns the provider id.
  std::string upsert(planned p);
  caf::expected<double> touch(const std::string& id, const heartbeat& hb);
  bool erase(const std::string& id);
  provider_catalog_ptr catalog() const;
  void set_status(const std::string& id, provider_status status);
  void mark_seen(const std::string& id);
  /// The candidates of a join (SPEC §7, placement).
  placement place(const std::string& bot, const std::string& preferred) const;
  /// Takes a token from the registration bucket; false with the seconds
  /// until the next one.
  bool admit(double& retry_after);
  /// Whether `instance` of provider `id` was removed on purpose.
  bool is_removed(const std::string& id, const std::string& instance);
  /// Keeps a tombstone of a provider removed on purpose (with an instance).
  void bury(const provider& p);
  /// Online again unless draining; tells the directory when it was not.
  void revive(provider& next, const provider& before);
  /// Tells the directory that `p` can take orphaned members of its bots.
  void offer_orphans(const provider& p);
  /// Arms the suspect timer of a provider that announced an interval.
  void arm_suspect(const std::string& id);
  /// Removes a provider durably: erased, buried when on purpose, its bot
  /// members dispatched again for `why` (when `redispatch`). `done` runs once
  /// durable or failed.
  void remove(const std::string& id, bool on_purpose, move_reason why,
              bool redispatch, std::function<void(const caf::error&)> done);
  /// A draining provider runs nothing more, or its drain timed out.
  void end_drain(const std::string& id, bool timed_out);
  /// The provider's lease (unix seconds) when seen now.
  double lease_from_now() const;
  stale_report stale(caf::timespan stale_after) const;
  /// The providers of `ids` still unseen for `stale_after`.
  std::vector<std::string> evictable(const std::vector<std::string>& ids,
                                     caf::timespan stale_after) const;
  /// The periodic record of heartbeats and catalog changes, if any.
  store_batch seen_batch();
  /// Sends a batch to the store; `done` runs in the registry once it is
  /// durable (or failed: then nothing of it was applied).
  void write(store_batch batch, std::function<void(const caf::error&)> done);
  /// Cluster mode: applies providers another instance changed, without
  /// writing them (that instance did, and does the re-dispatch); with
  /// `resync`, providers the batch does not name are erased too.
  void apply_remote(const remote_batch& batch);
  /// Sends the periodic record, if any, with no acknowledgement wanted.
  void flush_seen();

  // -- the handlers' steps, one member each (no callback nests in another) ---

  /// Why a registration is turned away now (rate, key, tombstone), or none;
  /// it takes a token from the registration bucket.
  caf::error refuse(const provider_registration& reg);
  /// Writes a registration; `rp` gets the provider id once it is durable.
  void enroll(const provider_registration& reg,
              caf::typed_response_promise<std::string> rp);
  /// Removes a known provider at its request; `rp` gets true once durable.
  void deregister(const std::string& id, bool on_purpose,
                  caf::typed_response_promise<bool> rp);
  /// Drains a known provider; `rp` gets it, draining, once durable.
  void drain(const std::string& id, const drain_request& req,
             caf::typed_response_promise<provider> rp);
  /// Evicts the (evictable) providers of `ids`; `rp` gets those evicted.
  void evict(std::vector<std::string> ids,
             caf::typed_response_promise<std::vector<std::string>> rp);
  /// A provider's bot member count (`id` empty: the start-up census is
  /// complete).
  void count_runs(const std::string& id, uint64_t count);
  /// The suspect timer armed at heartbeat `beats` fired.
  void suspect(const std::string& id, uint64_t beats);
  /// The drain timer of `deadline` fired.
  void expire(const std::string& id, double deadline);

private:
  /// A registration's write answered: applied and answered, then reconciled.
  void enrolled(const caf::error& err, std::shared_ptr<planned> p,
                std::shared_ptr<std::vector<std::string>> runs, double since,
                caf::typed_response_promise<std::string> rp);
  /// Asks the directory which runs a provider listed that no member holds.
  void reconcile(const std::string& id, const std::vector<std::string>& runs,
                 double since);
  /// Tells a provider to stop the runs no member holds.
  void stop_unheld(const std::string& id,
                   const std::vector<std::string>& runs);
  /// A drain's write answered: the provider drains from now on.
  void drained(const caf::error& err, const std::string& id,
               const provider& next, double timeout,
               caf::typed_response_promise<provider> rp);
  /// A provider another instance wrote (`json` is its snapshot text), added
  /// or replacing ours; what the text lacks stays this instance's view.
  void put_remote(provider next, std::shared_ptr<const std::string> json,
                  caf::actor_clock::time_point now);
  void index(const provider& p);
  void unindex(const provider& p);
  /// Something a listing shows changed: a new version, and the count for
  /// /api/health.
  void listing_changed();
};

registry_actor::behavior_type
registry(registry_actor::stateful_pointer<registry_state> self,
         store_actor store, std::vector<provider> initial,
         registry_config config, std::shared_ptr<server_stats> stats);

} // namespace vb
