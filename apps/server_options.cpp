#include "apps/server_options.hpp"

#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>

namespace vb {

namespace {

/// The value of --config in argv, if any (read before the other flags, so
/// that flags win over the file).
std::optional<std::string> config_path(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc)
      return std::string{argv[i + 1]};
    if (arg.rfind("--config=", 0) == 0)
      return arg.substr(9);
  }
  return std::nullopt;
}

} // namespace

std::optional<server_options> parse_server_options(int argc, char** argv,
                                                   int& exit_code) {
  server_options o;
  if (auto path = config_path(argc, argv)) {
    std::ifstream in{*path};
    if (!in) {
      std::cerr << "voicebot-server: cannot read config file " << *path << "\n";
      exit_code = 2;
      return std::nullopt;
    }
    std::stringstream text;
    text << in.rdbuf();
    if (auto err = apply_config_json(text.str(), o); !err.empty()) {
      std::cerr << "voicebot-server: " << *path << ": " << err << "\n";
      exit_code = 2;
      return std::nullopt;
    }
  }
  CLI::App app{"voicebot-server: coordinates AI voice bots, their providers "
               "and lobbies"};
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", std::string{"voicebot-server "} + VB_VERSION,
                       "print the version and exit");
  std::string config_file;
  app.add_option("--config", config_file,
                 "JSON config file; flags win over it");
  app.add_option("--host", o.host, "HTTP listener address");
  app.add_option("--port", o.port, "HTTP port; 0 picks a free one and logs it");
  app.add_option("--base-path", o.base_path,
                 "prefix for every route, e.g. /ai-voicebot");
  app.add_option("--data-dir", o.data_dir,
                 "where the snapshots and journals live (created if missing)");
  app.add_option("--caf-host", o.caf_host,
                 "address of the provider gateway for CAF providers");
  app.add_option("--caf-port", o.caf_port,
                 "port of the provider gateway; 0 picks a free one");
  app.add_option("--caf-tls-cert", o.caf_tls_cert,
                 "TLS certificate chain (PEM) of the provider gateway");
  app.add_option("--caf-tls-key", o.caf_tls_key,
                 "private key (PEM) of --caf-tls-cert");
  app.add_option("--caf-tls-ca", o.caf_tls_ca,
                 "CA certificate (PEM) that must sign a provider's "
                 "certificate (mutual TLS)");
  app.add_flag("--caf-insecure", o.caf_insecure,
               "let the provider gateway listen beyond loopback without TLS");
  app.add_option("--cleanup-interval", o.cleanup_interval,
                 "seconds between cleanup sweeps (fractions allowed)");
  app.add_option("--stale-after", o.stale_after,
                 "seconds unseen before a provider is evicted");
  app.add_option("--max-evict-fraction", o.max_evict_fraction,
                 "a sweep that would evict more than this share evicts none");
  app.add_option("--journal-max-bytes", o.journal_max_bytes,
                 "a journal past this size is compacted into a new snapshot");
  app.add_option("--dispatch-timeout", o.dispatch_timeout,
                 "seconds a provider has to accept a join before the next "
                 "one is tried");
  app.add_option("--failover-attempts", o.failover_attempts,
                 "further providers a failed join is tried on (0 to 16)");
  app.add_option("--drain-timeout", o.drain_timeout,
                 "default seconds a draining provider keeps its bot members");
  app.add_option("--max-registrations-per-second",
                 o.max_registrations_per_second,
                 "registrations admitted per second, then 429");
  app.add_option("--max-lobbies", o.max_lobbies,
                 "lobbies held at most; a creation past it is 409");
  app.add_option("--max-members-per-lobby", o.max_members_per_lobby,
                 "members (people and bots) of one lobby at most; a join "
                 "past it is 409");
  app.add_option("--idempotency-ttl", o.idempotency_ttl,
                 "seconds the first answer of a join's Idempotency-Key is "
                 "kept");
  app.add_option("--dump-journal", o.dump_journal,
                 "print a journal's records as JSON lines and exit (0, or 1 "
                 "naming the offset of the first bad record)");
  app.add_flag("--bench-no-sync", o.bench_no_sync,
               "benchmarks only: journal appends skip fdatasync, so NOTHING "
               "is durable (the relay ceiling of bench/run)")
    ->group(""); // hidden from --help
  app.add_option("--provider-key", o.provider_keys,
                 "accepted provider key; repeatable")
    ->take_all();
  app.add_option("--log-level", o.log_level,
                 "trace, debug, info, warn or error");
  app.add_option("--max-body-bytes", o.max_body_bytes,
                 "request body limit (413 past it)");
  app.add_option("--max-header-bytes", o.max_header_bytes,
                 "request header block limit (431 past it)");
  app.add_option("--read-timeout", o.read_timeout,
                 "seconds to receive a whole request before the connection "
                 "is closed");
  app.add_option("--header-timeout", o.header_timeout,
                 "seconds to receive a request's header block (capped by "
                 "--read-timeout) before the connection is closed");
  app.add_option("--write-timeout", o.write_timeout,
                 "seconds to send one response before the connection is "
                 "closed (a client reading too slowly)");
  app.add_option("--max-connections", o.max_connections,
                 "open connections accepted at once");
  app.add_option("--max-connections-per-address",
                 o.max_connections_per_address,
                 "open connections accepted from one client address; more "
                 "are closed at accept");
  app.add_option("--http-threads", o.http_threads,
                 "HTTP I/O threads; 0: one per core");
  app.add_option("--cors-origin", o.cors_origins,
                 "an origin allowed by CORS; repeatable")
    ->take_all();
  app.add_option("--trusted-proxy", o.trusted_proxies,
                 "a reverse proxy (address or CIDR prefix) whose "
                 "X-Forwarded-For and X-Forwarded-Proto are believed; "
                 "repeatable")
    ->take_all();
  app.add_option("--public-url", o.public_url,
                 "the server's public URL (with the base path), sent to "
                 "HTTP providers as server_url in joins");
  std::string etcd_endpoints;
  app.add_option("--etcd-endpoints", etcd_endpoints,
                 "cluster mode: etcd client URLs, comma-separated "
                 "(http://HOST:PORT,...); the state lives in etcd");
  app.add_option("--etcd-prefix", o.etcd_prefix,
                 "cluster mode: the prefix of every key in etcd");
  app.add_option("--instance-id", o.instance_id,
                 "cluster mode: this instance's id (default: the one kept in "
                 "DATA_DIR/instance_id)");
  app.add_option("--cluster-host", o.cluster_host,
                 "cluster mode: address of the CAF port between instances");
  app.add_option("--cluster-port", o.cluster_port,
                 "cluster mode: the CAF port between instances; 0 picks one");
  app.add_option("--instance-ttl", o.instance_ttl,
                 "cluster mode: seconds of this instance's lease in etcd");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    exit_code = app.exit(e);
    return std::nullopt;
  } catch (const CLI::CallForVersion& e) {
    exit_code = app.exit(e);
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    std::cerr << "voicebot-server: " << e.what() << "\n"
              << "Run with --help for the options.\n";
    exit_code = 2;
    return std::nullopt;
  }
  if (!etcd_endpoints.empty()) {
    o.etcd_endpoints.clear();
    std::stringstream list{etcd_endpoints};
    std::string item;
    while (std::getline(list, item, ','))
      if (auto b = item.find_first_not_of(' '); b != std::string::npos)
        o.etcd_endpoints.push_back(
          item.substr(b, item.find_last_not_of(' ') - b + 1));
  }
  if (auto err = validate(o); !err.empty()) {
    std::cerr << "voicebot-server: " << err << "\n";
    exit_code = 2;
    return std::nullopt;
  }
  exit_code = 0;
  return o;
}

} // namespace vb
