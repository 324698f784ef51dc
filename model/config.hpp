// The server's options (SPEC §6): embedded defaults, the JSON config file,
// and their validation. The command line (apps/) overrides the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vb {

struct server_options {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  std::string base_path;
  std::string data_dir = "./data";
  std::string caf_host = "127.0.0.1";
  uint16_t caf_port = 8001;
  /// TLS on the provider gateway (SPEC §5): its certificate chain and key,
  /// and the CA whose signature a provider's certificate needs (mutual TLS).
  /// All three or none.
  std::string caf_tls_cert;
  std::string caf_tls_key;
  std::string caf_tls_ca;
  /// A gateway beyond loopback without TLS starts only with this.
  bool caf_insecure = false;
  double cleanup_interval = 300; // seconds
  double stale_after = 900;      // seconds
  double max_evict_fraction = 0.5;
  /// A journal past this size is compacted into a new snapshot (SPEC §3).
  uint64_t journal_max_bytes = 16 * 1024 * 1024;
  // The fleet (SPEC §7).
  /// Seconds a provider has to accept a join before the next one is tried.
  double dispatch_timeout = 5;
  /// Further providers a failed join is tried on (0 to 16).
  unsigned failover_attempts = 1;
  /// Default seconds a draining provider keeps its bot members.
  double drain_timeout = 300;
  /// Registrations admitted per second (a token bucket with a burst of the
  /// same size); the rest are answered 429.
  double max_registrations_per_second = 1000;
  /// Seconds an Idempotency-Key's first answer is kept.
  double idempotency_ttl = 86400;
  std::vector<std::string> provider_keys;
  std::string log_level = "info";
  // Limits of the HTTP front end.
  std::size_t max_body_bytes = 64 * 1024;
  std::size_t max_header_bytes = 8 * 1024;
  double read_timeout = 30; // seconds for a whole request
  /// Seconds to receive a request's header block (read_timeout when that
  /// is shorter): a client trickling headers (slowloris) is cut off early.
  double header_timeout = 10;
  /// Seconds to send one response: a client reading too slowly (slow
  /// read) is cut off instead of holding its connection.
  double write_timeout = 30;
  std::size_t max_connections = 10000;
  /// Open connections accepted from one client address; more from it are
  /// closed at accept, so one address cannot take every slot.
  std::size_t max_connections_per_address = 64;
  /// Lobbies held at most, and members (people and bots) of one lobby:
  /// past either, creations and joins are 409, so that clients cannot grow
  /// the state without bound.
  std::size_t max_lobbies = 10000;
  std::size_t max_members_per_lobby = 1000;
  unsigned http_threads = 0; // 0: one per core
  std::vector<std::string> cors_origins;
  // Behind a reverse proxy (docs/deployment.md).
  /// Addresses (or CIDR prefixes, "10.0.0.0/8") of the proxies whose
  /// X-Forwarded-For and X-Forwarded-Proto are believed; from any other
  /// address those headers are ignored.
  std::vector<std::string> trusted_proxies;
  /// The server's public URL (with the base path), sent to HTTP providers
  /// as `server_url` in joins; empty: the listener's own address.
  std::string public_url;
  // Frontend access tokens and per-client quotas (docs/security.md).
  /// The file holding the secret that signs frontend access tokens (HS256
  /// JWTs); empty: no access control (the original protocol).
  std::string access_secret_file;
  /// With access tokens: reading lobbies and bots needs one too.
  bool access_required_for_reads = false;
  /// Bot joins admitted per client (or token subject) per minute, and
  /// lobbies created per client per hour (token buckets with a burst of the
  /// same size); past them 429. 0: no quota.
  std::size_t max_joins_per_client_per_minute = 60;
  std::size_t max_lobbies_per_client_per_hour = 20;
  // Cluster mode (SPEC §8): with etcd endpoints, the state lives in etcd.
  /// etcd's client URLs (http:// or https://HOST:PORT); none: the
  /// embedded mode.
  std::vector<std::string> etcd_endpoints;
  /// TLS to https endpoints: the CA of etcd's certificates, and this
  /// instance's client certificate and key (PEM files).
  std::string etcd_ca;
  std::string etcd_cert;
  std::string etcd_key;
  /// etcd's authentication: the user, and the file holding its password.
  std::string etcd_user;
  std::string etcd_password_file;
  /// The password read from etcd_password_file at start-up (never printed).
  std::string etcd_password;
  /// Every key of this service in etcd starts with this.
  std::string etcd_prefix = "/vb/";
  /// This instance's id; empty: the one kept in DATA_DIR/instance_id.
  std::string instance_id;
  /// The CAF port between instances (loopback by default; 0 picks one).
  std::string cluster_host = "127.0.0.1";
  /// Mutual TLS on the cluster port (all three, or none): this instance's
  /// certificate and key, and the CA every instance's certificate is from.
  /// Beyond loopback without them the server refuses to start, unless
  /// cluster_insecure (a trusted network).
  std::string cluster_tls_cert;
  std::string cluster_tls_key;
  std::string cluster_tls_ca;
  bool cluster_insecure = false;
  uint16_t cluster_port = 8002;
  /// Seconds of the instance's lease in etcd: an instance unheard for this
  /// long loses its pending joins and its leadership.
  double instance_ttl = 10;
  // Voice (SPEC §9).
  /// Voice peers of one lobby at most (a full mesh).
  std::size_t max_voice_peers = 8;
  /// Seconds a person's session lasts without a socket speaking for it.
  double session_idle_timeout = 120;
  /// Seconds a lobby's bot members stay once its last person left (it had
  /// people); then they are stopped. 0: never (bots alone keep a lobby).
  double empty_lobby_grace = 0;
  /// Messages a lobby WebSocket may send per second; past it, closed (1008).
  double signal_rate = 50;
  /// ICE servers handed out in a welcome: stun:, turn:/turns: URLs, the
  /// file holding coturn's static-auth-secret, a credential's lifetime.
  std::vector<std::string> stun_urls;
  std::vector<std::string> turn_urls;
  std::string turn_secret_file;
  double turn_ttl = 86400;
  /// The secret read from turn_secret_file at start-up (never printed).
  std::string turn_secret;
  /// The secret read from access_secret_file at start-up (never printed).
  std::string access_secret;
  /// Command line only: print this journal's records and exit.
  std::string dump_journal;
  /// Command line only, benchmarks only: journal appends skip fdatasync
  /// (nothing is durable), to measure the relay ceiling.
  bool bench_no_sync = false;
};

/// Applies the JSON config file text to `opts`. Unknown keys and wrong types
/// are errors. Returns an empty string on success, else what is wrong.
std::string apply_config_json(const std::string& text, server_options& opts);

/// Checks every option; returns an empty string when all are valid.
std::string validate(const server_options& opts);

/// The embedded defaults as the JSON config file would hold them.
std::string default_config_json();

} // namespace vb
