#include "actors/graph.hpp"

#include <caf/all.hpp>

#include "actors/directory.hpp"
#include "actors/gateway.hpp"
#include "actors/stats.hpp"

namespace vb {

graph_ports embedded_ports(caf::actor_system& sys,
                           std::shared_ptr<journal_store_seed> providers,
                           std::shared_ptr<journal_store_seed> lobbies,
                           std::shared_ptr<journal_store_seed> keys,
                           std::shared_ptr<server_stats> stats) {
  graph_ports ports;
  ports.providers = spawn_journal_store(sys, std::move(providers), stats);
  ports.lobbies = spawn_journal_store(sys, std::move(lobbies), stats);
  ports.keys = spawn_journal_store(sys, std::move(keys), stats);
  return ports;
}

graph spawn_graph(caf::actor_system& sys, graph_config config,
                  graph_ports ports, graph_state state,
                  std::shared_ptr<http_link> http,
                  std::shared_ptr<server_stats> stats) {
  graph g;
  g.registry = sys.spawn(registry, ports.providers.store,
                         std::move(state.providers), config.registry, stats);
  auto& d = config.dispatcher;
  d.registry = g.registry;
  d.stats = stats;
  d.elsewhere = ports.links;
  g.dispatcher = sys.spawn(dispatcher, std::move(http), d);
  g.cleanup = sys.spawn(cleanup, g.registry, config.cleanup, stats,
                        g.dispatcher);
  auto& peers = config.lobbies;
  peers.registry = g.registry;
  peers.dispatcher = g.dispatcher;
  peers.store = ports.lobbies.store;
  peers.stats = stats;
  peers.claims = ports.claims;
  peers.lines = ports.lines;
  peers.duty = ports.duty;
  g.directory = sys.spawn(lobby_directory, std::move(state.lobbies), peers,
                          stats);
  // The registry tells the lobbies of fleet events (re-dispatch, orphans,
  // lost runs) and the dispatcher of runs to stop.
  caf::anon_send(g.registry, atom::peers_v, g.directory, g.dispatcher);
  g.idempotency = sys.spawn(idempotency, g.directory, ports.keys.store,
                            std::move(state.keys), config.idempotency, stats);
  g.gateway = sys.spawn(provider_gateway,
                        gateway_peers{g.registry, g.dispatcher, g.directory});
  g.ports = std::move(ports);
  if (g.ports.spawned)
    g.ports.spawned(g);
  return g;
}

void graph::stop(caf::actor_system& sys) const {
  std::vector<caf::actor> owners{caf::actor_cast<caf::actor>(gateway),
                                 caf::actor_cast<caf::actor>(idempotency),
                                 caf::actor_cast<caf::actor>(cleanup),
                                 caf::actor_cast<caf::actor>(directory),
                                 caf::actor_cast<caf::actor>(dispatcher),
                                 caf::actor_cast<caf::actor>(registry)};
  owners.insert(owners.end(), ports.owned.begin(), ports.owned.end());
  caf::scoped_actor self{sys};
  for (auto& a : owners)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  for (auto& a : owners)
    self->wait_for(a);
  std::vector<caf::actor> stores;
  for (auto* h : {&ports.providers, &ports.lobbies, &ports.keys})
    for (auto& a : {caf::actor_cast<caf::actor>(h->store),
                    caf::actor_cast<caf::actor>(h->writer)})
      if (a) {
        caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
        stores.push_back(a);
      }
  if (!ports.last)
    return;
  for (auto& a : stores)
    self->wait_for(a);
  caf::anon_send_exit(ports.last, caf::exit_reason::user_shutdown);
  self->wait_for(ports.last);
}

} // namespace vb
