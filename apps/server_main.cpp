// voicebot-server: wiring only. Options → snapshots loaded → actors → HTTP
// listener → READY=1 → wait for SIGTERM/SIGINT → STOPPING=1 → in-flight
// requests answered → final snapshots → exit 0, all within 5 s.
#include <fstream>
#include <tuple>
#include <sstream>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <future>
#include <iostream>
#include <arpa/inet.h>
#include <malloc.h>
#include <memory>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/cleanup.hpp"
#include "cluster/wiring.hpp"
#include "actors/dispatcher.hpp"
#include "actors/gateway.hpp"
#include "actors/idempotency.hpp"
#include "actors/journal_store.hpp"
#include "actors/directory.hpp"
#include "actors/registry.hpp"
#include "actors/snapshot_writer.hpp"
#include "actors/stats.hpp"
#include "apps/caf_links.hpp"
#include "apps/sd_notify.hpp"
#include "apps/caf_runtime.hpp"
#include "apps/server_options.hpp"
#include "apps/stop_signals.hpp"
#include "etcd/etcd_client.hpp"
#include "http/server.hpp"
#include "link/http_client.hpp"
#include "model/clock.hpp"
#include "model/idempotency_codec.hpp"
#include "model/snapshot_codec.hpp"
#include "storage/journal.hpp"
#include "tls/caf_transport.hpp"

namespace {

caf::timespan seconds(double s) {
  return std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double>(s));
}

struct caf_config : vb::caf_runtime_config {
  caf_config() {
    // The wire block is registered by caf_runtime_config; the server's own
    // types follow it.
    vb::add_local_types(*this);
    vb::add_cluster_types(*this);
    // An idle CAF worker polls its queue and sleeps in between; by default
    // it sleeps 10 ms once relaxed, which adds up to 10 ms to every actor
    // hop of a lightly loaded server (a join takes several). 1 ms keeps
    // hops fast at about a thousand wake-ups a second per worker when idle.
    set("work-stealing.relaxed-sleep-duration",
        caf::timespan{std::chrono::milliseconds(1)});
  }
};

/// How long a shutdown may take in all (SPEC §6: exit within 5 s), and how
/// much of it in-flight requests get before their connections are closed.
constexpr auto shutdown_budget = std::chrono::milliseconds(4700);
constexpr auto drain_budget = std::chrono::milliseconds(3500);

void notify(const std::string& state) {
  std::string error;
  if (vb::sd_notify(state, &error))
    spdlog::debug("told the service manager {}", state.substr(0, state.find('\n')));
  else if (!error.empty())
    spdlog::warn("cannot notify the service manager: {}", error);
}

/// Loopback: all of 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104 and localhost.
bool is_loopback(const std::string& host) {
  if (host == "localhost")
    return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&v6)
           || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  return false;
}

/// A CAF port's TLS (the provider gateway's, SPEC §5; the cluster's):
/// beyond loopback it needs TLS, or its insecure flag; the files must be
/// readable PEM. `flag` is the flags' stem ("--caf"). Returns what is wrong.
std::string check_port_tls(const std::string& what, const std::string& flag,
                           const std::string& host,
                           const vb::tls::credentials& files, bool insecure) {
  if (files.certificate.empty()) {
    if (!is_loopback(host) && !insecure)
      return "the " + what + " would listen beyond loopback on " + host
             + " without TLS: give " + flag + "-tls-cert, " + flag
             + "-tls-key and " + flag + "-tls-ca (mutual TLS), or " + flag
             + "-insecure to run it without TLS on a trusted network";
    return {};
  }
  if (!vb::readable_pem(files.certificate, "CERTIFICATE"))
    return flag + "-tls-cert " + files.certificate
           + ": not a readable PEM certificate";
  if (!vb::readable_pem(files.key, "PRIVATE KEY"))
    return flag + "-tls-key " + files.key + ": not a readable PEM private key";
  if (!vb::readable_pem(files.ca, "CERTIFICATE"))
    return flag + "-tls-ca " + files.ca + ": not a readable PEM certificate";
  return {};
}

vb::tls::credentials gateway_tls(const vb::server_options& o) {
  return {o.caf_tls_cert, o.caf_tls_key, o.caf_tls_ca};
}

vb::tls::credentials cluster_tls(const vb::server_options& o) {
  return {o.cluster_tls_cert, o.cluster_tls_key, o.cluster_tls_ca};
}

/// Both CAF ports' TLS settings; the cluster's in cluster mode only.
std::string check_caf_tls(const vb::server_options& o) {
  if (auto err = check_port_tls("provider gateway", "--caf", o.caf_host,
                                gateway_tls(o), o.caf_insecure);
      !err.empty() || o.etcd_endpoints.empty())
    return err;
  return check_port_tls("cluster port", "--cluster", o.cluster_host,
                        cluster_tls(o), o.cluster_insecure);
}

/// A CAF port's TLS context, whose failed handshakes are logged (and
/// counted in `stats`' `counted`); null with the cause in `err`.
std::shared_ptr<const vb::tls::context>
load_port_tls(const std::string& what, const vb::tls::credentials& files,
              std::shared_ptr<vb::server_stats> stats,
              std::atomic<uint64_t> vb::server_stats::*counted,
              std::string& err) {
  return vb::tls::context::load(
    files,
    [what, stats, counted](const std::string& peer, const std::string& reason) {
      ((*stats).*counted).fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("{}: TLS handshake with {} failed: {}", what, peer, reason);
    },
    err);
}

/// Reads the secret in `file` (one line; its end of line dropped) into
/// `out`; the error names the flag and the file, never what it holds.
std::string read_secret_file(const std::string& flag, const std::string& file,
                             std::string& out) {
  if (file.empty())
    return {};
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  if (in)
    text << in.rdbuf();
  auto secret = text.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r'))
    secret.pop_back();
  if (!in || secret.empty())
    return flag + " " + file + ": cannot read a secret from it";
  out = std::move(secret);
  return {};
}

/// Reads the secrets the options name by file: coturn's static-auth-secret
/// (SPEC §9), etcd's password, the key of frontend access tokens.
std::string read_secrets(vb::server_options& o) {
  for (auto [flag, file, out] :
       {std::tuple{"--turn-secret-file", &o.turn_secret_file, &o.turn_secret},
        std::tuple{"--etcd-password-file", &o.etcd_password_file,
                   &o.etcd_password},
        std::tuple{"--access-secret-file", &o.access_secret_file,
                   &o.access_secret}})
    if (auto err = read_secret_file(flag, *file, *out); !err.empty())
      return err;
  // HS256 wants a key at least as long as its hash (RFC 7518 §3.2).
  if (!o.access_secret_file.empty() && o.access_secret.size() < 32)
    return "--access-secret-file " + o.access_secret_file
           + ": the secret must be at least 32 bytes (e.g. openssl rand "
             "-base64 32)";
  return {};
}

} // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  auto parsed = vb::parse_server_options(argc, argv, exit_code);
  if (!parsed)
    return exit_code;
  auto opts = *parsed;
  if (!opts.dump_journal.empty())
    return vb::storage::dump_journal(opts.dump_journal, std::cout, std::cerr);
  if (auto err = check_caf_tls(opts); !err.empty()) {
    std::cerr << "voicebot-server: " << err << "\n";
    return 2;
  }
  if (auto err = read_secrets(opts); !err.empty()) {
    std::cerr << "voicebot-server: " << err << "\n";
    return 2;
  }
  const bool caf_tls = !opts.caf_tls_cert.empty();
  spdlog::set_level(spdlog::level::from_str(opts.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  // Every thread started from here on inherits the blocked signals; main
  // waits for them with sigwait.
  auto signals = vb::block_stop_signals();

  if (opts.provider_keys.empty() && !is_loopback(opts.host))
    spdlog::warn("no provider keys configured while listening on {}: anyone "
                 "who reaches this address can register providers",
                 opts.host);
  // The file is named, never what it holds (docs/security.md).
  if (!opts.access_secret_file.empty())
    spdlog::info("frontend access tokens: required for changes{} (secret from "
                 "{})",
                 opts.access_required_for_reads ? " and reads" : "",
                 opts.access_secret_file);
  spdlog::info("per-client quotas: {} joins a minute, {} lobbies an hour (0: "
               "none)",
               opts.max_joins_per_client_per_minute,
               opts.max_lobbies_per_client_per_hour);

  // Snapshots and journals load before anything serves.
  auto stats = std::make_shared<vb::server_stats>();
  auto provider_seed = std::make_shared<vb::journal_store_seed>();
  auto lobby_seed = std::make_shared<vb::journal_store_seed>();
  auto key_seed = std::make_shared<vb::journal_store_seed>();
  provider_seed->max_bytes = lobby_seed->max_bytes = key_seed->max_bytes
    = opts.journal_max_bytes;
  // The owners' files are independent: loaded side by side.
  auto loading_providers = std::async(std::launch::async, [&] {
    return vb::load_providers(opts.data_dir, *provider_seed, stats.get());
  });
  auto loading_keys = std::async(std::launch::async, [&] {
    return vb::load_idempotency_keys(opts.data_dir, *key_seed, stats.get());
  });
  auto lobbies = vb::load_lobbies(opts.data_dir, *lobby_seed, stats.get());
  auto providers = loading_providers.get();
  auto idempotency_keys = loading_keys.get();
  if (!provider_seed->journal || !lobby_seed->journal || !key_seed->journal) {
    spdlog::error("cannot open the journals in {}", opts.data_dir);
    return 1;
  }
  // Loading parsed whole files: give the freed memory back.
  malloc_trim(0);
  if (opts.bench_no_sync) {
    spdlog::warn("--bench-no-sync: journal appends are not synced; nothing "
                 "is durable (benchmarks only)");
    provider_seed->journal->set_sync(false);
    lobby_seed->journal->set_sync(false);
    key_seed->journal->set_sync(false);
  }

  auto http = std::make_unique<vb::http_server>(opts);
  uint16_t port = 0;
  try {
    port = http->bind();
  } catch (const std::exception& e) {
    spdlog::error("cannot listen on {}:{}: {}", opts.host, opts.port, e.what());
    return 1;
  }
  // Providers call back on this URL; a wildcard address is not callable.
  auto callback_host = opts.host == "0.0.0.0" || opts.host == "::"
                         ? std::string{"127.0.0.1"}
                         : opts.host;
  if (callback_host.find(':') != std::string::npos)
    callback_host = "[" + callback_host + "]";
  // Behind a proxy the server cannot guess how providers reach it: the
  // operator says so with --public-url (with the base path).
  auto server_url = "http://" + callback_host + ":" + std::to_string(port)
                    + opts.base_path;
  if (!opts.public_url.empty()) {
    server_url = opts.public_url;
    while (server_url.size() > 1 && server_url.back() == '/')
      server_url.pop_back();
  }

  // With TLS, every accepted connection is a handshake that requires the
  // provider's certificate, signed by --caf-tls-ca; one that fails is
  // counted and logged, and touches no other connection.
  std::shared_ptr<const vb::tls::context> tls_context;
  if (caf_tls) {
    std::string err;
    tls_context = load_port_tls("provider gateway", gateway_tls(opts), stats,
                                &vb::server_stats::tls_handshake_failures, err);
    if (!tls_context) {
      std::cerr << "voicebot-server: --caf-tls-*: " << err << "\n";
      return 2;
    }
  }
  // Between instances: mutual TLS with the cluster's own CA.
  std::shared_ptr<const vb::tls::context> cluster_context;
  if (!opts.etcd_endpoints.empty() && !opts.cluster_tls_cert.empty()) {
    std::string err;
    cluster_context
      = load_port_tls("cluster port", cluster_tls(opts), stats,
                      &vb::server_stats::cluster_tls_handshake_failures, err);
    if (!cluster_context) {
      std::cerr << "voicebot-server: --cluster-tls-*: " << err << "\n";
      return 2;
    }
  }
  caf_config cfg;
  caf::actor_system sys{cfg};
  auto tls = caf_tls ? vb::tls::caf_transport::start(sys, tls_context) : nullptr;
  // The actor that publishes the gateway: the middleman's, or over TLS.
  auto connections = tls ? tls->actor() : sys.middleman().actor_handle();
  auto cluster_transport
    = cluster_context ? vb::tls::caf_transport::start(sys, cluster_context)
                      : nullptr;
  vb::graph_state state{std::move(providers), std::move(lobbies),
                        std::move(idempotency_keys)};
  // Cluster mode (SPEC §8): the instance goes live in etcd, imports the
  // data directory into an empty etcd once, and starts from etcd's state.
  std::optional<vb::cluster_instance> cluster;
  if (!opts.etcd_endpoints.empty()) {
    vb::cluster_options co;
    co.endpoints = opts.etcd_endpoints;
    co.ca = opts.etcd_ca;
    co.cert = opts.etcd_cert;
    co.key = opts.etcd_key;
    co.user = opts.etcd_user;
    co.password = opts.etcd_password;
    co.prefix = opts.etcd_prefix;
    co.ttl = opts.instance_ttl;
    co.instance_id = opts.instance_id;
    co.data_dir = opts.data_dir;
    co.host = opts.cluster_host;
    co.port = opts.cluster_port;
    co.transport = cluster_transport ? cluster_transport->actor()
                                     : sys.middleman().actor_handle();
    co.mutual_tls = cluster_transport != nullptr;
    if (!cluster_transport && !is_loopback(opts.cluster_host))
      spdlog::warn("--cluster-insecure: the cluster port listens beyond "
                   "loopback on {} without TLS: only trusted networks should "
                   "reach it",
                   opts.cluster_host);
    co.server_url = server_url;
    co.version = VB_VERSION;
    cluster.emplace();
    if (auto err = vb::start_cluster(sys, co, stats,
                                     {{"providers", provider_seed.get()},
                                      {"lobbies", lobby_seed.get()},
                                      {"idempotency", key_seed.get()}},
                                     state, *cluster);
        !err.empty()) {
      spdlog::error("cluster: {}", err);
      return 1;
    }
  }
  // The provider link for HTTP providers (its own I/O thread); the
  // dispatcher sees it as an http_link.
  std::shared_ptr<vb::http_link> client = std::make_shared<vb::http_client>(1);
  // The mode is the stores and ports the one graph is spawned on: a journal
  // store per durable file (embedded), or etcd (cluster).
  auto ports = cluster ? vb::cluster_ports(sys, *cluster, stats)
                       : vb::embedded_ports(sys, provider_seed, lobby_seed,
                                            key_seed, stats);
  vb::graph_config gc;
  gc.registry.provider_keys = opts.provider_keys;
  gc.registry.stale_after = seconds(opts.stale_after);
  gc.registry.drain_timeout = seconds(opts.drain_timeout);
  gc.registry.max_registrations_per_second = opts.max_registrations_per_second;
  gc.cleanup = vb::cleanup_config{seconds(opts.cleanup_interval),
                                  seconds(opts.stale_after),
                                  opts.max_evict_fraction};
  gc.dispatcher.server_url = server_url;
  gc.dispatcher.dispatch_timeout = seconds(opts.dispatch_timeout);
  gc.dispatcher.failover_attempts
    = static_cast<size_t>(opts.failover_attempts);
  // A fenced instance (cluster) lets its CAF providers go through this.
  gc.dispatcher.close_links = vb::link_closer(sys);
  auto& peers = gc.lobbies;
  peers.dispatch_wait
    = seconds((opts.failover_attempts + 1.0) * opts.dispatch_timeout + 5);
  peers.stray_grace
    = (opts.failover_attempts + 1.0) * opts.dispatch_timeout + 5;
  peers.max_lobbies = opts.max_lobbies;
  peers.max_voice_peers = opts.max_voice_peers;
  peers.session_idle_timeout = seconds(opts.session_idle_timeout);
  peers.empty_lobby_grace = seconds(opts.empty_lobby_grace);
  peers.max_members = opts.max_members_per_lobby;
  // Joins with an Idempotency-Key (SPEC §7). Its wait for the directory is
  // above the front end's (every failover at dispatch_timeout, then the
  // write), so a join the client gave up on is still remembered.
  gc.idempotency.ttl = seconds(opts.idempotency_ttl);
  gc.idempotency.join_timeout = seconds(
    std::max(60.0, 2 * ((opts.failover_attempts + 1.0)
                          * (opts.dispatch_timeout + 1) + 10)));
  auto g = vb::spawn_graph(sys, gc, std::move(ports), std::move(state), client,
                           stats);
  auto caf_port = caf::make_function_view(connections)(
    caf::publish_atom_v, opts.caf_port,
    caf::actor_cast<caf::strong_actor_ptr>(g.gateway),
    sys.message_types(g.gateway), opts.caf_host, true);
  if (!caf_port) {
    spdlog::error("cannot publish the provider gateway on {}:{}: {}",
                  opts.caf_host, opts.caf_port, sys.render(caf_port.error()));
    http->stop();
    g.stop(sys);
    return 1;
  }
  if (!caf_tls && !is_loopback(opts.caf_host))
    spdlog::warn("--caf-insecure: the provider gateway listens beyond "
                 "loopback on {} without TLS: only trusted networks should "
                 "reach it",
                 opts.caf_host);
  spdlog::info("provider gateway listening on {}:{}{}", opts.caf_host,
               *caf_port, caf_tls ? " (mutual TLS)" : "");

  {
    // The owners have taken over the loaded snapshots (their counters for
    // /api/health and /metrics are set) before anything is served.
    caf::scoped_actor self{sys};
    auto failed = [&](caf::error& err) {
      spdlog::error("start-up: {}", sys.render(err));
    };
    self->request(g.registry, std::chrono::seconds(10), vb::atom::list_v)
      .receive([](vb::provider_catalog_ptr&) {}, failed);
    // Any answer will do (a listing would copy every member).
    self->request(g.directory, std::chrono::seconds(10), vb::atom::get_v,
                  std::string{})
      .receive([](vb::lobby&) {}, [](caf::error&) {});
  }
  http->start(vb::backend{&sys, g.registry, g.directory, stats, g.idempotency});
  spdlog::info("voicebot-server {} listening on http://{}:{}{}", VB_VERSION,
               opts.host, port, opts.base_path);
  // Snapshots are loaded and the listener is bound and accepting.
  notify("READY=1\nSTATUS=listening on http://" + opts.host + ":"
         + std::to_string(port) + opts.base_path);

  int sig = 0;
  sigwait(&signals, &sig);
  auto stop_started = std::chrono::steady_clock::now();
  notify("STOPPING=1\nSTATUS=shutting down");
  spdlog::info("{} received: shutting down", sig == SIGTERM ? "SIGTERM"
                                                             : "SIGINT");
  // No new connections; requests in flight are answered (Connection: close).
  http->stop(static_cast<int>(drain_budget.count()));
  auto left = [&] {
    auto rest = shutdown_budget - (std::chrono::steady_clock::now() - stop_started);
    return std::max(std::chrono::duration_cast<std::chrono::milliseconds>(rest),
                    std::chrono::milliseconds(300));
  };
  int rc = 0;
  {
    // The final records: a durable barrier on each store (through the
    // registry, which first hands its store the last heartbeats).
    caf::scoped_actor self{sys};
    auto flush = [&](auto& owner, const char* what) {
      self->request(owner, left(), vb::atom::flush_v)
        .receive(
          [&](uint64_t) { spdlog::info("final {} records written", what); },
          [&](caf::error& err) {
            spdlog::error("final {} records failed: {}", what,
                          sys.render(err));
            rc = 1;
          });
    };
    flush(g.registry, "provider");
    // The final snapshots, so that a restart replays no journal: all three
    // at once (each store has its own writer), within what is left of the
    // budget. One not finished in time loses nothing: every record is in
    // its journal already (the barrier above), and the next start replays
    // it; a snapshot cut short is never the one loaded (temp file, rename).
    auto deadline = left();
    std::vector<std::pair<decltype(self->request(g.ports.providers.store, deadline,
                                                 vb::atom::compact_v)),
                          const char*>>
      compactions;
    for (auto& [store, what] : {std::pair{g.ports.providers.store, "provider"},
                                std::pair{g.ports.lobbies.store, "lobby"},
                                std::pair{g.ports.keys.store, "idempotency key"}})
      compactions.emplace_back(
        self->request(store, deadline, vb::atom::compact_v), what);
    for (auto& [pending, what] : compactions)
      pending.receive(
        [&, what = what](uint64_t seq) {
          spdlog::info("final {} snapshot written (record {})", what, seq);
        },
        [&, what = what](caf::error& err) {
          if (err == caf::sec::request_timeout) {
            spdlog::warn("final {} snapshot not finished within the shutdown "
                         "budget: its journal holds every record, the next "
                         "start replays it",
                         what);
            return;
          }
          spdlog::error("final {} snapshot failed: {}", what, sys.render(err));
          rc = 1;
        });
  }
  // No new CAF providers (this closes the acceptor only); the links drop
  // with the process, and the providers reconnect with backoff.
  caf::make_function_view(connections)(caf::unpublish_atom_v,
                                       g.gateway.address(), *caf_port);
  if (cluster)
    cluster->unpublish();
  g.stop(sys);
  sys.await_all_actors_done();
  http.reset();
  client.reset();
  spdlog::info("stopped in {} ms",
               std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now() - stop_started)
                 .count());
  return rc;
}
