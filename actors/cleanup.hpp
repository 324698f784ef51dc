// The cleanup actor: wakes every cleanup interval and asks the registry to
// evict providers unseen for stale_after, with the mass-eviction guard of
// SPEC §3 (a blip is not a dead fleet; a dead fleet does not linger).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor_clock.hpp>

#include "actors/interfaces.hpp"

namespace vb {

struct server_stats;

struct cleanup_config {
  caf::timespan interval = std::chrono::seconds(300);
  caf::timespan stale_after = std::chrono::seconds(900);
  double max_evict_fraction = 0.5;
};

/// What one sweep decided.
struct sweep_decision {
  std::vector<std::string> evict;
  /// True when the guard held back at least one stale provider.
  bool held = false;
  std::size_t held_count = 0;
};

struct cleanup_state {
  static inline constexpr const char* name = "cleanup";

  cleanup_config config;
  registry_actor registry;
  /// Probes HTTP providers before they are evicted (may be null: no probes).
  dispatcher_actor dispatcher;
  std::shared_ptr<server_stats> stats;

  /// When the guard first held back each provider it is still holding.
  std::unordered_map<std::string, caf::actor_clock::time_point> held_since;

  /// True while a sweep waits for the registry: sweeps never overlap.
  bool sweeping = false;

  /// Applies the rule to the registry's report at time `now`.
  sweep_decision decide(const stale_report& report,
                        caf::actor_clock::time_point now);

  /// Probes the HTTP providers among `victims` (an answer counts as seen;
  /// the dispatcher tells the registry), then asks the registry to evict the
  /// others.
  void probe_then_evict(cleanup_actor::pointer self,
                        std::vector<stale_entry> victims);
  void evict(cleanup_actor::pointer self, std::vector<std::string> ids);
};

cleanup_actor::behavior_type
cleanup(cleanup_actor::stateful_pointer<cleanup_state> self,
        registry_actor registry, cleanup_config config,
        std::shared_ptr<server_stats> stats, dispatcher_actor dispatcher);

} // namespace vb
