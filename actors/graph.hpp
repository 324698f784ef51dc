// The one wiring of the server's actors (docs/architecture.md, "Wiring"):
// main() and the tests spawn the same graph; the mode (embedded, cluster)
// is only the stores and ports it is given.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "actors/cleanup.hpp"
#include "actors/dispatcher.hpp"
#include "actors/idempotency.hpp"
#include "actors/journal_store.hpp"
#include "actors/lobby.hpp"
#include "actors/registry.hpp"

namespace vb {

class http_link;
struct server_stats;
struct graph;

/// What differs between the modes: where each owner's changes are durable,
/// and the four ports (actors/ports.hpp). The embedded defaults are set.
struct graph_ports {
  store_handles providers;
  store_handles lobbies;
  store_handles keys;
  std::shared_ptr<const claim_port> claims = local_claims();
  std::shared_ptr<const line_port> lines = local_lines();
  std::shared_ptr<const link_port> links = local_links();
  std::shared_ptr<const duty_port> duty = local_duty();
  /// Runs once the graph is spawned (cluster: the relay learns its peers,
  /// each store its owner).
  std::function<void(const graph&)> spawned;
  /// The mode's own actors, stopped with the owners (cluster: the relay and
  /// the link table).
  std::vector<caf::actor> owned;
  /// Stopped after the stores' last writes (cluster: the membership, whose
  /// lease fences every commit).
  caf::actor last;
};

/// The owners' loaded state.
struct graph_state {
  std::vector<provider> providers;
  std::vector<lobby_image> lobbies;
  std::vector<idempotency_entry> keys;
};

/// Each actor's settings; spawn_graph fills in the handles between them.
struct graph_config {
  registry_config registry;
  dispatcher_config dispatcher;
  lobby_peers lobbies;
  idempotency_config idempotency;
  cleanup_config cleanup;
};

/// The spawned graph: every long-lived actor of the server.
struct graph {
  registry_actor registry;
  dispatcher_actor dispatcher;
  lobby_directory_actor directory;
  idempotency_actor idempotency;
  cleanup_actor cleanup;
  provider_gateway_actor gateway;
  graph_ports ports;

  /// Stops every actor in order: the owners first (the registry hands its
  /// last heartbeats to its store on exit), then, once they are gone, the
  /// stores (each writes what it was sent), then the mode's last actor.
  void stop(caf::actor_system& sys) const;
};

/// The embedded mode's stores: a journal store per durable file, each with
/// its snapshot writer (detached: fdatasync never stalls a worker).
graph_ports embedded_ports(caf::actor_system& sys,
                           std::shared_ptr<journal_store_seed> providers,
                           std::shared_ptr<journal_store_seed> lobbies,
                           std::shared_ptr<journal_store_seed> keys,
                           std::shared_ptr<server_stats> stats);

/// Spawns the graph on the given ports, from the loaded state. `http` is the
/// link to HTTP providers.
graph spawn_graph(caf::actor_system& sys, graph_config config,
                  graph_ports ports, graph_state state,
                  std::shared_ptr<http_link> http,
                  std::shared_ptr<server_stats> stats);

} // namespace vb
