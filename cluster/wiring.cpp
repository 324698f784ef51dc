#include "cluster/wiring.hpp"

#include <cmath>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/idempotency.hpp"
#include "etcd/etcd_client.hpp"
#include "model/clock.hpp"
#include "model/idempotency_codec.hpp"
#include "model/snapshot_codec.hpp"

namespace vb {

void cluster_instance::stop() const {
  caf::anon_send_exit(membership, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(links, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(relay, caf::exit_reason::user_shutdown);
}

void cluster_instance::unpublish() const {
  caf::make_function_view(transport)(caf::unpublish_atom_v, relay.address(),
                                     port);
}

namespace {

/// The owners' state at one revision of etcd, decoded as their snapshots
/// are. Returns an error text, or empty.
std::string load_from_etcd(cluster_context& ctx, graph_state& state,
                           int64_t& revision) {
  std::vector<std::string> texts;
  if (auto err = cluster_load(ctx,
                              {{"providers", render_providers},
                               {"lobbies", render_lobbies},
                               {"idempotency", render_idempotency_keys}},
                              texts, revision);
      !err.empty())
    return err;
  std::string why;
  std::vector<provider> providers;
  std::vector<lobby> lobbies;
  std::vector<idempotency_entry> keys;
  if (!decode_providers(texts[0], providers, why))
    return "the providers in etcd do not load: " + why;
  if (!decode_lobbies(texts[1], lobbies, why))
    return "the lobbies in etcd do not load: " + why;
  if (!decode_idempotency(texts[2], keys, why))
    return "the idempotency keys in etcd do not load: " + why;
  state.providers = std::move(providers);
  state.lobbies = to_images(std::move(lobbies));
  state.keys = std::move(keys);
  return {};
}

} // namespace

std::string start_cluster(caf::actor_system& sys, const cluster_options& opts,
                          std::shared_ptr<server_stats> stats,
                          std::vector<std::pair<std::string, journal_store_seed*>>
                            seeds,
                          graph_state& state, cluster_instance& out) {
  std::string endpoints;
  for (auto& e : opts.endpoints)
    endpoints += (endpoints.empty() ? "" : ",") + e;
  auto ctx = std::make_shared<cluster_context>();
  etcd::etcd_options eo;
  eo.endpoints = opts.endpoints;
  eo.ca_file = opts.ca;
  eo.cert_file = opts.cert;
  eo.key_file = opts.key;
  eo.user = opts.user;
  eo.password = opts.password;
  eo.attempt_timeout = std::chrono::milliseconds(1000);
  ctx->client = std::make_shared<etcd::etcd_client>(eo);
  if (auto why = ctx->client->config_error(); !why.empty())
    return "etcd client: " + why;
  ctx->prefix = opts.prefix;
  ctx->ttl = std::chrono::seconds(static_cast<long>(std::ceil(opts.ttl)));
  ctx->instance_id = opts.instance_id;
  if (ctx->instance_id.empty()) {
    std::string error;
    ctx->instance_id = stored_instance_id(opts.data_dir, error);
    if (ctx->instance_id.empty())
      return error;
  }
  out.ctx = ctx;
  if (auto why = cluster_probe(*ctx, endpoints); !why.empty())
    return why;
  // The relay for the other instances' forwarded joins and stops of the
  // CAF providers linked here (loopback unless configured).
  out.relay = spawn_cluster_relay(sys);
  out.transport = opts.transport;
  auto published = caf::make_function_view(out.transport)(
    caf::publish_atom_v, opts.port,
    caf::actor_cast<caf::strong_actor_ptr>(out.relay),
    sys.message_types(out.relay), opts.host, true);
  if (!published) {
    caf::anon_send_exit(out.relay, caf::exit_reason::user_shutdown);
    return "cannot publish the cluster relay on " + opts.host + ":"
           + std::to_string(opts.port) + ": " + sys.render(published.error());
  }
  out.port = *published;
  spdlog::info("cluster relay listening on {}:{}{}", opts.host, out.port,
               opts.mutual_tls ? " (mutual TLS)" : "");
  auto address = opts.host + ":" + std::to_string(out.port);
  nlohmann::json info{{"http", opts.server_url},
                      {"cluster", address},
                      {"started_at", unix_now()},
                      {"version", opts.version}};
  out.membership = spawn_membership(sys, ctx, stats, info.dump());
  out.links = spawn_cluster_links(sys, ctx, address, out.relay, out.transport);
  spdlog::info("cluster: instance {} joining etcd at {} (prefix {})",
               ctx->instance_id, endpoints, opts.prefix);
  std::string error;
  {
    caf::scoped_actor self{sys};
    self->request(out.membership, std::chrono::seconds(60), atom::get_v)
      .receive([](int64_t) {},
               [&](caf::error& err) {
                 error = "no live lease in etcd within 60 s (" + sys.render(err)
                         + "): is etcd running at " + endpoints
                         + "? cannot start without etcd";
               });
  }
  if (error.empty())
    error = cluster_import_once(*ctx, seeds);
  if (error.empty())
    error = load_from_etcd(*ctx, state, out.revision);
  if (!error.empty()) {
    out.stop();
    return error;
  }
  spdlog::info("cluster: started from etcd at revision {}: {} providers, "
               "{} lobbies, {} idempotency keys",
               out.revision, state.providers.size(), state.lobbies.size(),
               state.keys.size());
  return {};
}

graph_ports cluster_ports(caf::actor_system& sys, const cluster_instance& c,
                          std::shared_ptr<server_stats> stats) {
  auto providers = spawn_etcd_store(sys, c.ctx, "providers", c.revision, stats);
  auto lobbies = spawn_etcd_store(sys, c.ctx, "lobbies", c.revision, stats);
  auto keys = spawn_etcd_store(sys, c.ctx, "idempotency", c.revision, stats);
  graph_ports ports;
  ports.providers.store = providers.store;
  ports.lobbies.store = lobbies.store;
  ports.keys.store = keys.store;
  ports.claims = reserved_claims(lobbies.claims);
  ports.lines = relayed_lines(c.links);
  ports.links = remote_links(c.links);
  ports.duty = sweeper_duty(stats);
  auto relay = c.relay;
  auto membership = c.membership;
  ports.spawned = [relay, membership, providers, lobbies, keys](const graph& g) {
    caf::anon_send(relay, atom::peers_v, g.dispatcher, g.directory);
    caf::anon_send(membership, atom::peers_v, g.dispatcher);
    // The other instances' changes, from each store's watch, go to their
    // owners.
    caf::anon_send(providers.owner, atom::peers_v,
                   remote_owner_actor{g.registry});
    caf::anon_send(lobbies.owner, atom::peers_v,
                   remote_owner_actor{g.directory});
    caf::anon_send(keys.owner, atom::peers_v,
                   remote_owner_actor{g.idempotency});
  };
  ports.owned = {caf::actor_cast<caf::actor>(c.relay),
                 caf::actor_cast<caf::actor>(c.links)};
  // The lease goes last (revoked: the instance key and the sweeper are
  // handed on at once), after the stores' last commits.
  ports.last = caf::actor_cast<caf::actor>(c.membership);
  return ports;
}

} // namespace vb
