#include "apps/server_options.hpp"

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

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

/// What the command line is parsed into: the options, and the two flags
/// that are not options themselves.
struct command_line {
  server_options options;
  std::string config_file;    // read first, by config_path
  std::string etcd_endpoints; // comma-separated, split after parsing
};

/// The field a flag sets: one of the options, or of the command line.
template <class T>
T& field(command_line& c, T server_options::*member) {
  return c.options.*member;
}
template <class T>
T& field(command_line& c, T command_line::*member) {
  return c.*member;
}

/// Adds the flag that sets `member`: a switch for a bool, repeatable for a
/// list, else an option taking one value.
template <auto member>
CLI::Option* bind(CLI::App& app, command_line& c, const char* name,
                  const char* help) {
  auto& x = field(c, member);
  using T = std::remove_reference_t<decltype(x)>;
  if constexpr (std::is_same_v<T, bool>)
    return app.add_flag(name, x, help);
  else if constexpr (std::is_same_v<T, std::vector<std::string>>)
    return app.add_option(name, x, help)->take_all();
  else
    return app.add_option(name, x, help);
}

/// bind, and hidden from --help.
template <auto member>
CLI::Option* hidden(CLI::App& app, command_line& c, const char* name,
                    const char* help) {
  return bind<member>(app, c, name, help)->group("");
}

/// One flag: its name, how it is added (and what it sets), its help.
struct flag_row {
  const char* name;
  CLI::Option* (*add)(CLI::App&, command_line&, const char*, const char*);
  const char* help;
};

/// Every flag but --help and --version, in the order --help lists them.
const flag_row flags[] = {
  {"--config", bind<&command_line::config_file>,
   "JSON config file; flags win over it"},
  {"--host", bind<&server_options::host>, "HTTP listener address"},
  {"--port", bind<&server_options::port>,
   "HTTP port; 0 picks a free one and logs it"},
  {"--base-path", bind<&server_options::base_path>,
   "prefix for every route, e.g. /ai-voicebot"},
  {"--data-dir", bind<&server_options::data_dir>,
   "where the snapshots and journals live (created if missing)"},
  {"--caf-host", bind<&server_options::caf_host>,
   "address of the provider gateway for CAF providers"},
  {"--caf-port", bind<&server_options::caf_port>,
   "port of the provider gateway; 0 picks a free one"},
  {"--caf-tls-cert", bind<&server_options::caf_tls_cert>,
   "TLS certificate chain (PEM) of the provider gateway"},
  {"--caf-tls-key", bind<&server_options::caf_tls_key>,
   "private key (PEM) of --caf-tls-cert"},
  {"--caf-tls-ca", bind<&server_options::caf_tls_ca>,
   "CA certificate (PEM) that must sign a provider's certificate (mutual "
   "TLS)"},
  {"--caf-insecure", bind<&server_options::caf_insecure>,
   "let the provider gateway listen beyond loopback without TLS"},
  {"--cleanup-interval", bind<&server_options::cleanup_interval>,
   "seconds between cleanup sweeps (fractions allowed)"},
  {"--stale-after", bind<&server_options::stale_after>,
   "seconds unseen before a provider is evicted"},
  {"--max-evict-fraction", bind<&server_options::max_evict_fraction>,
   "a sweep that would evict more than this share evicts none"},
  {"--journal-max-bytes", bind<&server_options::journal_max_bytes>,
   "a journal past this size is compacted into a new snapshot"},
  {"--dispatch-timeout", bind<&server_options::dispatch_timeout>,
   "seconds a provider has to accept a join before the next one is tried"},
  {"--failover-attempts", bind<&server_options::failover_attempts>,
   "further providers a failed join is tried on (0 to 16)"},
  {"--drain-timeout", bind<&server_options::drain_timeout>,
   "default seconds a draining provider keeps its bot members"},
  {"--max-registrations-per-second",
   bind<&server_options::max_registrations_per_second>,
   "registrations admitted per second, then 429"},
  {"--max-lobbies", bind<&server_options::max_lobbies>,
   "lobbies held at most; a creation past it is 409"},
  {"--max-members-per-lobby", bind<&server_options::max_members_per_lobby>,
   "members (people and bots) of one lobby at most; a join past it is 409"},
  {"--idempotency-ttl", bind<&server_options::idempotency_ttl>,
   "seconds the first answer of a join's Idempotency-Key is kept"},
  {"--dump-journal", bind<&server_options::dump_journal>,
   "print a journal's records as JSON lines and exit (0, or 1 naming the "
   "offset of the first bad record)"},
  {"--bench-no-sync", hidden<&server_options::bench_no_sync>,
   "benchmarks only: journal appends skip fdatasync, so NOTHING is durable "
   "(the relay ceiling of bench/run)"},
  {"--provider-key", bind<&server_options::provider_keys>,
   "accepted provider key; repeatable"},
  {"--log-level", bind<&server_options::log_level>,
   "trace, debug, info, warn or error"},
  {"--max-body-bytes", bind<&server_options::max_body_bytes>,
   "request body limit (413 past it)"},
  {"--max-header-bytes", bind<&server_options::max_header_bytes>,
   "request header block limit (431 past it)"},
  {"--read-timeout", bind<&server_options::read_timeout>,
   "seconds to receive a whole request before the connection is closed"},
  {"--header-timeout", bind<&server_options::header_timeout>,
   "seconds to receive a request's header block (capped by --read-timeout) "
   "before the connection is closed"},
  {"--write-timeout", bind<&server_options::write_timeout>,
   "seconds to send one response before the connection is closed (a client "
   "reading too slowly)"},
  {"--max-connections", bind<&server_options::max_connections>,
   "open connections accepted at once"},
  {"--max-connections-per-address",
   bind<&server_options::max_connections_per_address>,
   "open connections accepted from one client address; more are closed at "
   "accept"},
  {"--http-threads", bind<&server_options::http_threads>,
   "HTTP I/O threads; 0: one per core"},
  {"--cors-origin", bind<&server_options::cors_origins>,
   "an origin allowed by CORS; repeatable"},
  {"--trusted-proxy", bind<&server_options::trusted_proxies>,
   "a reverse proxy (address or CIDR prefix) whose X-Forwarded-For and "
   "X-Forwarded-Proto are believed; repeatable"},
  {"--public-url", bind<&server_options::public_url>,
   "the server's public URL (with the base path), sent to HTTP providers as "
   "server_url in joins"},
  {"--access-secret-file", bind<&server_options::access_secret_file>,
   "file holding the secret that signs frontend access tokens (HS256 JWTs); "
   "with it, creating lobbies, bot joins and leaves, people's sessions and "
   "WebSocket hellos need Authorization: Bearer TOKEN"},
  {"--access-required-for-reads",
   bind<&server_options::access_required_for_reads>,
   "with --access-secret-file: reading lobbies, a lobby's events and the bots "
   "needs a token too"},
  {"--max-joins-per-client-per-minute",
   bind<&server_options::max_joins_per_client_per_minute>,
   "bot joins admitted per client address (or token subject) per minute, "
   "then 429; 0: no quota"},
  {"--max-lobbies-per-client-per-hour",
   bind<&server_options::max_lobbies_per_client_per_hour>,
   "lobbies created per client address (or token subject) per hour, then "
   "429; 0: no quota"},
  {"--etcd-endpoints", bind<&command_line::etcd_endpoints>,
   "cluster mode: etcd client URLs, comma-separated (http://HOST:PORT or "
   "https://HOST:PORT,...); the state lives in etcd"},
  {"--etcd-ca", bind<&server_options::etcd_ca>,
   "cluster mode: the CA that signed etcd's certificates (PEM), for https "
   "endpoints"},
  {"--etcd-cert", bind<&server_options::etcd_cert>,
   "cluster mode: this instance's client certificate for etcd (PEM), with "
   "--etcd-key"},
  {"--etcd-key", bind<&server_options::etcd_key>,
   "cluster mode: the key of --etcd-cert (PEM)"},
  {"--etcd-user", bind<&server_options::etcd_user>,
   "cluster mode: etcd's user name, with --etcd-password-file"},
  {"--etcd-password-file", bind<&server_options::etcd_password_file>,
   "cluster mode: a file holding the password of --etcd-user"},
  {"--etcd-prefix", bind<&server_options::etcd_prefix>,
   "cluster mode: the prefix of every key in etcd"},
  {"--instance-id", bind<&server_options::instance_id>,
   "cluster mode: this instance's id (default: the one kept in "
   "DATA_DIR/instance_id)"},
  {"--cluster-host", bind<&server_options::cluster_host>,
   "cluster mode: address of the CAF port between instances"},
  {"--cluster-tls-cert", bind<&server_options::cluster_tls_cert>,
   "cluster mode: this instance's certificate (PEM) for mutual TLS between "
   "instances, with --cluster-tls-key and --cluster-tls-ca"},
  {"--cluster-tls-key", bind<&server_options::cluster_tls_key>,
   "cluster mode: the key of --cluster-tls-cert (PEM)"},
  {"--cluster-tls-ca", bind<&server_options::cluster_tls_ca>,
   "cluster mode: the CA every instance's certificate must come from (PEM)"},
  {"--cluster-insecure", bind<&server_options::cluster_insecure>,
   "cluster mode: allow the cluster port beyond loopback without TLS (a "
   "trusted network only)"},
  {"--cluster-port", bind<&server_options::cluster_port>,
   "cluster mode: the CAF port between instances; 0 picks one"},
  {"--instance-ttl", bind<&server_options::instance_ttl>,
   "cluster mode: seconds of this instance's lease in etcd"},
  {"--max-voice-peers", bind<&server_options::max_voice_peers>,
   "voice peers of one lobby at most (2 to 64); a hello past it is "
   "voice_full"},
  {"--session-idle-timeout", bind<&server_options::session_idle_timeout>,
   "seconds a person's session lasts without a socket speaking for it"},
  {"--empty-lobby-grace", bind<&server_options::empty_lobby_grace>,
   "seconds a lobby's bots stay once its last person left, then they are "
   "stopped (fractions allowed); 0: never"},
  {"--stun-url", bind<&server_options::stun_urls>,
   "a STUN server for voice peers (stun:HOST[:PORT]); repeatable"},
  {"--turn-url", bind<&server_options::turn_urls>,
   "a TURN server for voice peers (turn: or turns: URL); repeatable; needs "
   "--turn-secret-file"},
  {"--turn-secret-file", bind<&server_options::turn_secret_file>,
   "file holding coturn's static-auth-secret (TURN REST credentials)"},
  {"--signal-rate", bind<&server_options::signal_rate>,
   "messages a lobby WebSocket may send per second; past it, closed (1008)"},
  {"--turn-ttl", bind<&server_options::turn_ttl>,
   "seconds a TURN credential handed out in a welcome is good for"},
};

} // namespace

std::optional<server_options> parse_server_options(int argc, char** argv,
                                                   int& exit_code) {
  command_line c;
  if (auto path = config_path(argc, argv)) {
    std::ifstream in{*path};
    if (!in) {
      std::cerr << "voicebot-server: cannot read config file " << *path << "\n";
      exit_code = 2;
      return std::nullopt;
    }
    std::stringstream text;
    text << in.rdbuf();
    if (auto err = apply_config_json(text.str(), c.options); !err.empty()) {
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
  for (auto& f : flags)
    f.add(app, c, f.name, f.help);
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
  auto& o = c.options;
  if (!c.etcd_endpoints.empty()) {
    o.etcd_endpoints.clear();
    std::stringstream list{c.etcd_endpoints};
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
