#include <catch2/catch.hpp>

#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/config.hpp"

using namespace vb;

#ifndef VB_SOURCE_DIR
#  error "VB_SOURCE_DIR must be defined by the build"
#endif

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// validate() refuses the defaults changed by `change`, naming `fragment`.
template <class Change>
void refused(Change change, const char* fragment) {
  server_options v;
  change(v);
  CHECK_THAT(validate(v), Catch::Contains(fragment));
}

/// validate() takes the defaults changed by `change`.
template <class Change>
void accepted(Change change) {
  server_options v;
  change(v);
  CHECK(validate(v).empty());
}

} // namespace

TEST_CASE("config: conf/voicebot-server.json holds every option with its "
          "embedded default", "[config]") {
  auto text = read_file(VB_SOURCE_DIR "/conf/voicebot-server.json");
  REQUIRE_FALSE(text.empty());
  server_options o;
  o.port = 1; // changed, so the file must set it back
  o.log_level = "error";
  CHECK(apply_config_json(text, o).empty());
  CHECK(validate(o).empty());
  // Same values as the embedded defaults, and no option missing.
  auto file = nlohmann::json::parse(text);
  auto defaults = nlohmann::json::parse(default_config_json());
  for (auto& [key, value] : defaults.items()) {
    INFO(key);
    REQUIRE(file.contains(key));
    CHECK(file[key] == value);
    CHECK(file.contains("_" + key)); // documented
  }
  CHECK(o.port == 8000);
  CHECK(o.log_level == "info");
}

TEST_CASE("config: cluster mode's options are checked", "[config][cluster]") {
  server_options o;
  CHECK(validate(o).empty()); // embedded: no endpoints
  o.etcd_endpoints = {"http://127.0.0.1:2379", "http://[::1]:2380"};
  CHECK(validate(o).empty());
  o.etcd_endpoints = {"ftp://127.0.0.1:2379"};
  CHECK(validate(o).find("must be http://HOST:PORT") != std::string::npos);
  o.etcd_endpoints = {"https://127.0.0.1:2379"};
  CHECK(validate(o).find("need etcd_ca") != std::string::npos);
  o.etcd_ca = "/etc/etcd/ca.pem";
  CHECK(validate(o).empty());
  o.etcd_cert = "/etc/etcd/client.pem"; // without its key
  CHECK(validate(o).find("go together") != std::string::npos);
  o.etcd_key = "/etc/etcd/client.key";
  CHECK(validate(o).empty());
  o.etcd_user = "vb"; // without a password file
  CHECK(validate(o).find("etcd_password_file") != std::string::npos);
  o.etcd_password_file = "/etc/etcd/password";
  CHECK(validate(o).empty());
  o.etcd_endpoints = {"http://127.0.0.1:2379"}; // TLS files, yet plain
  CHECK(validate(o).find("none is https") != std::string::npos);
  o.etcd_ca = o.etcd_cert = o.etcd_key = "";
  o.cluster_tls_cert = "/etc/vb/instance.pem"; // without key and CA
  CHECK(validate(o).find("go together (mutual TLS between instances)")
        != std::string::npos);
  o.cluster_tls_key = "/etc/vb/instance.key";
  o.cluster_tls_ca = "/etc/vb/cluster-ca.pem";
  CHECK(validate(o).empty());
  o.cluster_tls_cert = o.cluster_tls_key = o.cluster_tls_ca = "";
  o.etcd_endpoints = {"http://127.0.0.1"};
  CHECK_FALSE(validate(o).empty());
  o.etcd_endpoints = {"http://127.0.0.1:2379/v3"};
  CHECK_FALSE(validate(o).empty());
  o.etcd_endpoints = {"http://127.0.0.1:23x9"};
  CHECK_FALSE(validate(o).empty());
  o.etcd_endpoints.clear();
  o.etcd_prefix = "vb";
  CHECK(validate(o) == "etcd_prefix must start and end with '/' (e.g. /vb/)");
  o.etcd_prefix = "/vb/";
  o.instance_id = "a b";
  CHECK_FALSE(validate(o).empty());
  o.instance_id = std::string(65, 'x');
  CHECK_FALSE(validate(o).empty());
  o.instance_id = "node-1.eu_west";
  CHECK(validate(o).empty());
  o.instance_ttl = 1;
  CHECK(validate(o) == "instance_ttl must be between 2 and 3600 seconds");
  o.instance_ttl = 10;
  CHECK(apply_config_json(R"({"etcd_endpoints":"http://a:1"})", o)
        == "etcd_endpoints: expected a list of strings");
  CHECK(apply_config_json(R"({"etcd_endpoints":["http://a:1"],"cluster_port":0})", o)
          .empty());
  CHECK(o.etcd_endpoints == std::vector<std::string>{"http://a:1"});
  CHECK(o.cluster_port == 0);
}

TEST_CASE("config: bad files and values are refused with a clear message",
          "[config]") {
  server_options o;
  CHECK(apply_config_json("{", o) == "the config file is not valid JSON");
  CHECK(apply_config_json("[]", o) == "the config file must hold a JSON object");
  CHECK(apply_config_json(R"({"prot": 1})", o) == "unknown option 'prot'");
  CHECK(apply_config_json(R"({"port": "x"})", o)
        == "port: expected a non-negative integer");
  CHECK(apply_config_json(R"({"port": 70000})", o) == "port: out of range");
  CHECK(apply_config_json(R"({"stale_after": "1"})", o)
        == "stale_after: expected a number");
  CHECK(apply_config_json(R"({"provider_keys": [1]})", o)
        == "provider_keys: expected a list of strings");
  server_options v;
  v.stale_after = 0;
  CHECK_FALSE(validate(v).empty());
  v = {};
  v.max_evict_fraction = 1.5;
  CHECK_FALSE(validate(v).empty());
  v = {};
  v.log_level = "loud";
  CHECK_FALSE(validate(v).empty());
  v = {};
  v.base_path = "ai-voicebot";
  CHECK_FALSE(validate(v).empty());
  v.base_path = "/ai-voicebot";
  CHECK(validate(v).empty());
}

TEST_CASE("config: the fleet's options have SPEC §7's defaults and bounds",
          "[config]") {
  server_options o;
  CHECK(o.dispatch_timeout == 5);
  CHECK(o.failover_attempts == 1);
  CHECK(o.drain_timeout == 300);
  CHECK(o.max_registrations_per_second == 1000);
  CHECK(o.idempotency_ttl == 86400);
  CHECK(apply_config_json(R"({"dispatch_timeout": 0.5, "failover_attempts": 0,
    "drain_timeout": 30, "max_registrations_per_second": 2.5,
    "idempotency_ttl": 60})",
                          o)
          .empty());
  CHECK(o.dispatch_timeout == 0.5);
  CHECK(o.failover_attempts == 0);
  CHECK(o.drain_timeout == 30);
  CHECK(o.max_registrations_per_second == 2.5);
  CHECK(o.idempotency_ttl == 60);
  CHECK(validate(o).empty());
  CHECK(apply_config_json(R"({"failover_attempts": 1.5})", o)
        == "failover_attempts: expected a non-negative integer");
  CHECK(apply_config_json(R"({"failover_attempts": -1})", o)
        == "failover_attempts: expected a non-negative integer");
  CHECK(apply_config_json(R"({"dispatch_timeout": "5"})", o)
        == "dispatch_timeout: expected a number");

  refused([](server_options& v) { v.dispatch_timeout = 0; }, "dispatch_timeout");
  refused([](server_options& v) { v.failover_attempts = 17; }, "failover_attempts");
  refused([](server_options& v) { v.drain_timeout = -1; }, "drain_timeout");
  refused([](server_options& v) { v.max_registrations_per_second = 0; },
          "max_registrations_per_second");
  refused([](server_options& v) { v.idempotency_ttl = 0; }, "idempotency_ttl");
  accepted([](server_options& v) { v.failover_attempts = 16; });
}

TEST_CASE("config: the slow-client limits have their defaults and bounds",
          "[config]") {
  server_options o;
  CHECK(o.header_timeout == 10);
  CHECK(o.read_timeout == 30);
  CHECK(o.header_timeout < o.read_timeout);
  CHECK(o.write_timeout == 30);
  CHECK(o.max_connections_per_address == 64);
  CHECK(o.max_connections_per_address < o.max_connections);
  CHECK(apply_config_json(R"({"header_timeout": 2.5, "write_timeout": 4,
    "max_connections_per_address": 3})",
                          o)
          .empty());
  CHECK(o.header_timeout == 2.5);
  CHECK(o.write_timeout == 4);
  CHECK(o.max_connections_per_address == 3);
  CHECK(validate(o).empty());
  CHECK(apply_config_json(R"({"header_timeout": "5"})", o)
        == "header_timeout: expected a number");
  CHECK(apply_config_json(R"({"max_connections_per_address": -1})", o)
        == "max_connections_per_address: expected a non-negative integer");
  refused([](server_options& v) { v.header_timeout = 0; }, "header_timeout");
  refused([](server_options& v) { v.write_timeout = -1; }, "write_timeout");
  refused([](server_options& v) { v.max_connections_per_address = 0; },
          "max_connections_per_address");
}

TEST_CASE("config: values from a file apply", "[config]") {
  server_options o;
  CHECK(apply_config_json(R"({"port": 0, "stale_after": 1.5,
    "provider_keys": ["a", "b"], "base_path": "/x", "_note": "ignored"})",
                          o)
          .empty());
  CHECK(o.port == 0);
  CHECK(o.stale_after == 1.5);
  CHECK(o.provider_keys == std::vector<std::string>{"a", "b"});
  CHECK(o.base_path == "/x");
}

TEST_CASE("config: the CAF gateway's TLS options come as a set", "[config]") {
  server_options o;
  CHECK(o.caf_tls_cert.empty());
  CHECK(o.caf_tls_key.empty());
  CHECK(o.caf_tls_ca.empty());
  CHECK_FALSE(o.caf_insecure);
  CHECK(apply_config_json(R"({"caf_tls_cert": "gw.pem", "caf_tls_key":
    "gw.key", "caf_tls_ca": "ca.pem", "caf_insecure": true})",
                          o)
          .empty());
  CHECK(o.caf_tls_cert == "gw.pem");
  CHECK(o.caf_tls_key == "gw.key");
  CHECK(o.caf_tls_ca == "ca.pem");
  CHECK(o.caf_insecure);
  CHECK(validate(o).empty());
  CHECK(apply_config_json(R"({"caf_insecure": 1})", o)
        == "caf_insecure: expected true or false");
  CHECK(apply_config_json(R"({"caf_tls_ca": 1})", o)
        == "caf_tls_ca: expected a string");
  server_options v;
  v.caf_tls_cert = "gw.pem";
  CHECK_THAT(validate(v), Catch::Contains("all three or none"));
  v.caf_tls_key = "gw.key";
  CHECK_THAT(validate(v), Catch::Contains("all three or none"));
  v.caf_tls_ca = "ca.pem";
  CHECK(validate(v).empty());
}

TEST_CASE("config: the reverse proxy's options are checked", "[config][proxy]") {
  server_options o;
  o.trusted_proxies = {"127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"};
  CHECK(validate(o).empty());
  o.trusted_proxies = {"proxy.example"};
  CHECK(validate(o).find("trusted proxy 'proxy.example' must be an IP address")
        != std::string::npos);
  o.trusted_proxies = {"10.0.0.0/40"};
  CHECK_FALSE(validate(o).empty());
  o.trusted_proxies.clear();
  o.public_url = "https://example.org/ai-voicebot";
  CHECK(validate(o).empty());
  for (auto bad : {"example.org", "ftp://example.org", "https://example.org/?x=1",
                   "https://user@example.org"}) {
    o.public_url = bad;
    CHECK(validate(o).find("public_url") != std::string::npos);
  }
  o.public_url.clear();
  CHECK(apply_config_json(R"({"trusted_proxies":["127.0.0.1"],)"
                          R"("public_url":"https://example.org/vb"})", o)
          .empty());
  CHECK(o.trusted_proxies == std::vector<std::string>{"127.0.0.1"});
  CHECK(o.public_url == "https://example.org/vb");
  CHECK(apply_config_json(R"({"trusted_proxies":"127.0.0.1"})", o)
        == "trusted_proxies: expected a list of strings");
}

TEST_CASE("config: the voice options (SPEC §9) are checked, naming the one "
          "that is wrong", "[config][voice]") {
  auto refused_with = [](auto change, const std::string& words) {
    server_options o;
    change(o);
    auto err = validate(o);
    INFO(err);
    CHECK(err.find(words) != std::string::npos);
  };
  refused_with([](server_options& o) { o.max_voice_peers = 1; },
               "max_voice_peers");
  refused_with([](server_options& o) { o.max_voice_peers = 65; },
               "max_voice_peers");
  refused_with([](server_options& o) { o.session_idle_timeout = 0; },
               "session_idle_timeout");
  refused_with([](server_options& o) { o.empty_lobby_grace = -1; },
               "empty_lobby_grace");
  refused_with(
    [](server_options& o) {
      o.empty_lobby_grace = std::numeric_limits<double>::infinity();
    },
    "empty_lobby_grace");
  refused_with([](server_options& o) { o.signal_rate = -1; }, "signal_rate");
  refused_with([](server_options& o) { o.turn_ttl = 0; }, "turn_ttl");
  refused_with([](server_options& o) { o.stun_urls = {"turn:x"}; },
               "stun_urls: turn:x");
  refused_with([](server_options& o) { o.turn_urls = {"stun:x"}; },
               "turn_urls: stun:x");
  refused_with([](server_options& o) { o.turn_urls = {"turn:x"}; },
               "turn_secret_file");
  refused_with([](server_options& o) { o.turn_secret_file = "/s"; },
               "turn_urls");
  server_options o;
  o.stun_urls = {"stun:127.0.0.1:3478"};
  o.turn_urls = {"turn:127.0.0.1:3478", "turns:turn.example:5349"};
  o.turn_secret_file = "/etc/voicebot-server/turn-secret";
  CHECK(validate(o).empty());
  CHECK(o.empty_lobby_grace == 0); // off unless asked for
  CHECK(apply_config_json(R"({"max_voice_peers": 4, "stun_urls": ["stun:a"],
                              "session_idle_timeout": 30.5,
                              "empty_lobby_grace": 0.5})",
                          o)
          .empty());
  CHECK(o.max_voice_peers == 4);
  CHECK(o.session_idle_timeout == 30.5);
  CHECK(o.empty_lobby_grace == 0.5);
  CHECK(validate(o).empty());
  CHECK(o.stun_urls == std::vector<std::string>{"stun:a"});
}

TEST_CASE("config: frontend access and quotas: off and 60 joins a minute, 20 "
          "lobbies an hour by default; reads need a secret to guard them",
          "[config][access]") {
  server_options o;
  CHECK(o.access_secret_file.empty());
  CHECK_FALSE(o.access_required_for_reads);
  CHECK(o.max_joins_per_client_per_minute == 60);
  CHECK(o.max_lobbies_per_client_per_hour == 20);
  CHECK(apply_config_json(R"({"access_secret_file": "/etc/vb/access",
    "access_required_for_reads": true, "max_joins_per_client_per_minute": 0,
    "max_lobbies_per_client_per_hour": 5})", o).empty());
  CHECK(validate(o).empty());
  CHECK(o.max_joins_per_client_per_minute == 0);
  CHECK(o.max_lobbies_per_client_per_hour == 5);
  o.access_secret_file.clear();
  CHECK(validate(o).find("access_required_for_reads needs access_secret_file")
        != std::string::npos);
  o.access_required_for_reads = false;
  o.max_joins_per_client_per_minute = 2000000;
  CHECK_FALSE(validate(o).empty());
  CHECK_FALSE(apply_config_json(R"({"max_joins_per_client_per_minute": -1})", o)
                .empty());
  // Only the file's name is an option: the secret is no config key.
  CHECK_FALSE(nlohmann::json::parse(default_config_json()).contains("access_secret"));
  CHECK(apply_config_json(R"({"access_secret": "x"})", o)
        == "unknown option 'access_secret'");
}
