// The registry: sole owner of provider state and of bot_providers.json.
#pragma once

#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor_clock.hpp>
#include <caf/response_promise.hpp>

#include "actors/group_commit.hpp"
#include "actors/interfaces.hpp"

namespace vb {

struct server_stats;

/// The file name of the provider snapshot in the data directory.
inline constexpr const char* providers_file_name = "bot_providers.json";

/// Loads the newest valid provider snapshot of `dir` (ours or the original
/// Python server's format), moving corrupt generations aside. Blocking: call
/// it before the server serves.
std::vector<provider> load_providers(const std::string& dir);

struct registry_config {
  /// Accepted provider keys; empty: registration needs no key.
  std::vector<std::string> provider_keys;
  /// How often changes that need no acknowledgement (heartbeats) are written.
  caf::timespan flush_interval = std::chrono::seconds(5);
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

  /// Writes bot_providers.json: changes are acknowledged once durable.
  group_commit snapshots;

  // -- state methods ---------------------------------------------------------

  void init(std::vector<provider> initial);
  caf::error check_key(const std::string& key) const;
  /// Registers or re-registers; returns the provider id.
  std::string upsert(const provider_registration& reg);
  caf::expected<double> touch(const std::string& id, const heartbeat& hb);
  bool erase(const std::string& id);
  provider_catalog_ptr catalog() const;
  void set_status(const std::string& id, provider_status status);
  void mark_seen(const std::string& id);
  std::vector<provider> resolve(const std::string& bot) const;
  stale_report stale(caf::timespan stale_after) const;
  std::vector<std::string> evict(const std::vector<std::string>& ids,
                                 caf::timespan stale_after);
  /// The current state as a snapshot job (rendered on the writer's thread).
  snapshot_job snapshot() const;

private:
  void index(const provider& p);
  void unindex(const provider& p);
  /// Something a listing shows changed: a new version, and the count for
  /// /api/health.
  void listing_changed();
};

registry_actor::behavior_type
registry(registry_actor::stateful_pointer<registry_state> self,
         snapshot_writer_actor writer, std::vector<provider> initial,
         registry_config config, std::shared_ptr<server_stats> stats);

} // namespace vb
