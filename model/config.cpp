#include "model/config.hpp"
#include "model/ice.hpp"

#include "model/address.hpp"
#include "model/url.hpp"

#include <cctype>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

namespace vb {

namespace {

using json = nlohmann::json;

json to_json(const server_options& o) {
  return json{
    {"host", o.host},
    {"port", o.port},
    {"base_path", o.base_path},
    {"data_dir", o.data_dir},
    {"caf_host", o.caf_host},
    {"caf_port", o.caf_port},
    {"caf_tls_cert", o.caf_tls_cert},
    {"caf_tls_key", o.caf_tls_key},
    {"caf_tls_ca", o.caf_tls_ca},
    {"caf_insecure", o.caf_insecure},
    {"cleanup_interval", o.cleanup_interval},
    {"stale_after", o.stale_after},
    {"max_evict_fraction", o.max_evict_fraction},
    {"journal_max_bytes", o.journal_max_bytes},
    {"dispatch_timeout", o.dispatch_timeout},
    {"failover_attempts", o.failover_attempts},
    {"drain_timeout", o.drain_timeout},
    {"max_registrations_per_second", o.max_registrations_per_second},
    {"idempotency_ttl", o.idempotency_ttl},
    {"provider_keys", o.provider_keys},
    {"log_level", o.log_level},
    {"max_body_bytes", o.max_body_bytes},
    {"max_header_bytes", o.max_header_bytes},
    {"read_timeout", o.read_timeout},
    {"header_timeout", o.header_timeout},
    {"write_timeout", o.write_timeout},
    {"max_connections", o.max_connections},
    {"max_connections_per_address", o.max_connections_per_address},
    {"max_lobbies", o.max_lobbies},
    {"max_members_per_lobby", o.max_members_per_lobby},
    {"http_threads", o.http_threads},
    {"cors_origins", o.cors_origins},
    {"trusted_proxies", o.trusted_proxies},
    {"public_url", o.public_url},
    {"access_secret_file", o.access_secret_file},
    {"access_required_for_reads", o.access_required_for_reads},
    {"max_joins_per_client_per_minute", o.max_joins_per_client_per_minute},
    {"max_lobbies_per_client_per_hour", o.max_lobbies_per_client_per_hour},
    {"etcd_endpoints", o.etcd_endpoints},
    {"etcd_prefix", o.etcd_prefix},
    {"etcd_ca", o.etcd_ca},
    {"etcd_cert", o.etcd_cert},
    {"etcd_key", o.etcd_key},
    {"etcd_user", o.etcd_user},
    {"etcd_password_file", o.etcd_password_file},
    {"instance_id", o.instance_id},
    {"cluster_host", o.cluster_host},
    {"cluster_tls_cert", o.cluster_tls_cert},
    {"cluster_tls_key", o.cluster_tls_key},
    {"cluster_tls_ca", o.cluster_tls_ca},
    {"cluster_insecure", o.cluster_insecure},
    {"cluster_port", o.cluster_port},
    {"instance_ttl", o.instance_ttl},
    {"max_voice_peers", o.max_voice_peers},
    {"session_idle_timeout", o.session_idle_timeout},
    {"empty_lobby_grace", o.empty_lobby_grace},
    {"signal_rate", o.signal_rate},
    {"stun_urls", o.stun_urls},
    {"turn_urls", o.turn_urls},
    {"turn_secret_file", o.turn_secret_file},
    {"turn_ttl", o.turn_ttl},
  };
}

template <class T>
std::string read_field(const json& j, const char* key, T& out) {
  try {
    if constexpr (std::is_same_v<T, std::string>) {
      if (!j.is_string())
        return std::string{key} + ": expected a string";
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      if (!j.is_array())
        return std::string{key} + ": expected a list of strings";
      for (auto& x : j)
        if (!x.is_string())
          return std::string{key} + ": expected a list of strings";
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!j.is_boolean())
        return std::string{key} + ": expected true or false";
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!j.is_number())
        return std::string{key} + ": expected a number";
    } else {
      if (!j.is_number_integer() || j.get<long long>() < 0)
        return std::string{key} + ": expected a non-negative integer";
      if (j.get<unsigned long long>()
          > static_cast<unsigned long long>(std::numeric_limits<T>::max()))
        return std::string{key} + ": out of range";
    }
    out = j.get<T>();
    return {};
  } catch (const std::exception& e) {
    return std::string{key} + ": " + e.what();
  }
}

} // namespace

std::string apply_config_json(const std::string& text, server_options& o) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded())
    return "the config file is not valid JSON";
  if (!j.is_object())
    return "the config file must hold a JSON object";
  for (auto& [key, value] : j.items()) {
    std::string err;
    if (key == "host") err = read_field(value, "host", o.host);
    else if (key == "port") err = read_field(value, "port", o.port);
    else if (key == "base_path") err = read_field(value, "base_path", o.base_path);
    else if (key == "data_dir") err = read_field(value, "data_dir", o.data_dir);
    else if (key == "caf_host") err = read_field(value, "caf_host", o.caf_host);
    else if (key == "caf_port") err = read_field(value, "caf_port", o.caf_port);
    else if (key == "caf_tls_cert")
      err = read_field(value, "caf_tls_cert", o.caf_tls_cert);
    else if (key == "caf_tls_key")
      err = read_field(value, "caf_tls_key", o.caf_tls_key);
    else if (key == "caf_tls_ca")
      err = read_field(value, "caf_tls_ca", o.caf_tls_ca);
    else if (key == "caf_insecure")
      err = read_field(value, "caf_insecure", o.caf_insecure);
    else if (key == "cleanup_interval")
      err = read_field(value, "cleanup_interval", o.cleanup_interval);
    else if (key == "stale_after")
      err = read_field(value, "stale_after", o.stale_after);
    else if (key == "max_evict_fraction")
      err = read_field(value, "max_evict_fraction", o.max_evict_fraction);
    else if (key == "journal_max_bytes")
      err = read_field(value, "journal_max_bytes", o.journal_max_bytes);
    else if (key == "dispatch_timeout")
      err = read_field(value, "dispatch_timeout", o.dispatch_timeout);
    else if (key == "failover_attempts")
      err = read_field(value, "failover_attempts", o.failover_attempts);
    else if (key == "drain_timeout")
      err = read_field(value, "drain_timeout", o.drain_timeout);
    else if (key == "max_registrations_per_second")
      err = read_field(value, "max_registrations_per_second",
                       o.max_registrations_per_second);
    else if (key == "idempotency_ttl")
      err = read_field(value, "idempotency_ttl", o.idempotency_ttl);
    else if (key == "provider_keys")
      err = read_field(value, "provider_keys", o.provider_keys);
    else if (key == "log_level") err = read_field(value, "log_level", o.log_level);
    else if (key == "max_body_bytes")
      err = read_field(value, "max_body_bytes", o.max_body_bytes);
    else if (key == "max_header_bytes")
      err = read_field(value, "max_header_bytes", o.max_header_bytes);
    else if (key == "read_timeout")
      err = read_field(value, "read_timeout", o.read_timeout);
    else if (key == "header_timeout")
      err = read_field(value, "header_timeout", o.header_timeout);
    else if (key == "write_timeout")
      err = read_field(value, "write_timeout", o.write_timeout);
    else if (key == "max_connections")
      err = read_field(value, "max_connections", o.max_connections);
    else if (key == "max_connections_per_address")
      err = read_field(value, "max_connections_per_address",
                       o.max_connections_per_address);
    else if (key == "max_lobbies")
      err = read_field(value, "max_lobbies", o.max_lobbies);
    else if (key == "max_members_per_lobby")
      err = read_field(value, "max_members_per_lobby",
                       o.max_members_per_lobby);
    else if (key == "http_threads")
      err = read_field(value, "http_threads", o.http_threads);
    else if (key == "cors_origins")
      err = read_field(value, "cors_origins", o.cors_origins);
    else if (key == "trusted_proxies")
      err = read_field(value, "trusted_proxies", o.trusted_proxies);
    else if (key == "public_url")
      err = read_field(value, "public_url", o.public_url);
    else if (key == "access_secret_file")
      err = read_field(value, "access_secret_file", o.access_secret_file);
    else if (key == "access_required_for_reads")
      err = read_field(value, "access_required_for_reads",
                       o.access_required_for_reads);
    else if (key == "max_joins_per_client_per_minute")
      err = read_field(value, "max_joins_per_client_per_minute",
                       o.max_joins_per_client_per_minute);
    else if (key == "max_lobbies_per_client_per_hour")
      err = read_field(value, "max_lobbies_per_client_per_hour",
                       o.max_lobbies_per_client_per_hour);
    else if (key == "etcd_endpoints")
      err = read_field(value, "etcd_endpoints", o.etcd_endpoints);
    else if (key == "etcd_prefix")
      err = read_field(value, "etcd_prefix", o.etcd_prefix);
    else if (key == "etcd_ca")
      err = read_field(value, "etcd_ca", o.etcd_ca);
    else if (key == "etcd_cert")
      err = read_field(value, "etcd_cert", o.etcd_cert);
    else if (key == "etcd_key")
      err = read_field(value, "etcd_key", o.etcd_key);
    else if (key == "etcd_user")
      err = read_field(value, "etcd_user", o.etcd_user);
    else if (key == "etcd_password_file")
      err = read_field(value, "etcd_password_file", o.etcd_password_file);
    else if (key == "instance_id")
      err = read_field(value, "instance_id", o.instance_id);
    else if (key == "cluster_host")
      err = read_field(value, "cluster_host", o.cluster_host);
    else if (key == "cluster_tls_cert")
      err = read_field(value, "cluster_tls_cert", o.cluster_tls_cert);
    else if (key == "cluster_tls_key")
      err = read_field(value, "cluster_tls_key", o.cluster_tls_key);
    else if (key == "cluster_tls_ca")
      err = read_field(value, "cluster_tls_ca", o.cluster_tls_ca);
    else if (key == "cluster_insecure")
      err = read_field(value, "cluster_insecure", o.cluster_insecure);
    else if (key == "cluster_port")
      err = read_field(value, "cluster_port", o.cluster_port);
    else if (key == "instance_ttl")
      err = read_field(value, "instance_ttl", o.instance_ttl);
    else if (key == "max_voice_peers")
      err = read_field(value, "max_voice_peers", o.max_voice_peers);
    else if (key == "session_idle_timeout")
      err = read_field(value, "session_idle_timeout", o.session_idle_timeout);
    else if (key == "empty_lobby_grace")
      err = read_field(value, "empty_lobby_grace", o.empty_lobby_grace);
    else if (key == "signal_rate")
      err = read_field(value, "signal_rate", o.signal_rate);
    else if (key == "stun_urls")
      err = read_field(value, "stun_urls", o.stun_urls);
    else if (key == "turn_urls")
      err = read_field(value, "turn_urls", o.turn_urls);
    else if (key == "turn_secret_file")
      err = read_field(value, "turn_secret_file", o.turn_secret_file);
    else if (key == "turn_ttl")
      err = read_field(value, "turn_ttl", o.turn_ttl);
    else if (key.rfind("_", 0) == 0) // "_comment" and the like
      continue;
    else
      err = "unknown option '" + key + "'";
    if (!err.empty())
      return err;
  }
  return {};
}

std::string validate(const server_options& o) {
  auto positive = [](double x) { return std::isfinite(x) && x > 0; };
  if (o.host.empty())
    return "host must not be empty";
  if (o.caf_host.empty())
    return "caf_host must not be empty";
  if ((o.caf_tls_cert.empty() || o.caf_tls_key.empty() || o.caf_tls_ca.empty())
      && !(o.caf_tls_cert.empty() && o.caf_tls_key.empty()
           && o.caf_tls_ca.empty()))
    return "caf_tls_cert, caf_tls_key and caf_tls_ca go together (mutual "
           "TLS): give all three or none";
  if (o.data_dir.empty())
    return "data_dir must not be empty";
  if (!o.base_path.empty()
      && (o.base_path.front() != '/' || o.base_path.back() == '/'))
    return "base_path must start with '/' and not end with '/' (e.g. "
           "/ai-voicebot), or be empty";
  if (!positive(o.cleanup_interval))
    return "cleanup_interval must be a positive number of seconds";
  if (!positive(o.stale_after))
    return "stale_after must be a positive number of seconds";
  if (!std::isfinite(o.max_evict_fraction) || o.max_evict_fraction < 0
      || o.max_evict_fraction > 1)
    return "max_evict_fraction must be between 0 and 1";
  if (o.journal_max_bytes < 4096)
    return "journal_max_bytes must be at least 4096";
  if (!positive(o.dispatch_timeout))
    return "dispatch_timeout must be a positive number of seconds";
  if (o.failover_attempts > 16)
    return "failover_attempts must be between 0 and 16";
  if (!positive(o.drain_timeout))
    return "drain_timeout must be a positive number of seconds";
  if (!positive(o.max_registrations_per_second))
    return "max_registrations_per_second must be a positive number";
  if (!positive(o.idempotency_ttl))
    return "idempotency_ttl must be a positive number of seconds";
  if (o.log_level != "trace" && o.log_level != "debug" && o.log_level != "info"
      && o.log_level != "warn" && o.log_level != "error")
    return "log_level must be one of trace, debug, info, warn, error";
  for (auto& k : o.provider_keys)
    if (k.empty())
      return "provider keys must not be empty";
  if (o.max_body_bytes == 0 || o.max_header_bytes == 0)
    return "max_body_bytes and max_header_bytes must be positive";
  if (!positive(o.read_timeout))
    return "read_timeout must be a positive number of seconds";
  if (!positive(o.header_timeout))
    return "header_timeout must be a positive number of seconds";
  if (!positive(o.write_timeout))
    return "write_timeout must be a positive number of seconds";
  if (o.max_connections == 0)
    return "max_connections must be positive";
  if (o.max_connections_per_address == 0)
    return "max_connections_per_address must be positive";
  if (o.max_lobbies == 0 || o.max_members_per_lobby == 0)
    return "max_lobbies and max_members_per_lobby must be positive";
  for (auto& t : o.trusted_proxies)
    if (!parse_address_prefix(t))
      return "trusted proxy '" + t
             + "' must be an IP address or a CIDR prefix (10.0.0.0/8, ::1/128)";
  if (o.access_required_for_reads && o.access_secret_file.empty())
    return "access_required_for_reads needs access_secret_file (the secret "
           "that signs access tokens)";
  if (o.max_joins_per_client_per_minute > 1000000
      || o.max_lobbies_per_client_per_hour > 1000000)
    return "max_joins_per_client_per_minute and "
           "max_lobbies_per_client_per_hour must be at most 1000000 (0: no "
           "quota)";
  if (!o.public_url.empty()) {
    url_parts u;
    if (parse_url(o.public_url, u) != url_error::none)
      return "public_url '" + o.public_url
             + "' must be an http:// or https:// URL without a query";
  }
  bool https = false;
  for (auto& e : o.etcd_endpoints) {
    // http(s)://HOST:PORT with nothing after the port (the JSON gateway's
    // root).
    auto scheme = e.rfind("https://", 0) == 0 ? 8u
                  : e.rfind("http://", 0) == 0 ? 7u
                                               : 0u;
    auto ok = scheme > 0 && e.size() > scheme;
    https = https || scheme == 8;
    if (ok) {
      auto rest = e.substr(scheme);
      auto colon = rest.rfind(':');
      ok = colon != std::string::npos && colon > 0 && colon + 1 < rest.size()
           && rest.find('/') == std::string::npos;
      if (ok)
        for (auto c : rest.substr(colon + 1))
          ok = ok && c >= '0' && c <= '9';
    }
    if (!ok)
      return "etcd endpoint '" + e + "' must be http://HOST:PORT or "
             "https://HOST:PORT";
  }
  if (https && o.etcd_ca.empty())
    return "https etcd endpoints need etcd_ca (--etcd-ca): the CA that "
           "signed etcd's certificates";
  if (!https && !(o.etcd_ca.empty() && o.etcd_cert.empty() && o.etcd_key.empty()))
    return "etcd_ca, etcd_cert and etcd_key are for https etcd endpoints; "
           "none is https://";
  if (o.etcd_cert.empty() != o.etcd_key.empty())
    return "etcd_cert and etcd_key go together (the client certificate and "
           "its key)";
  if (o.etcd_user.empty() != o.etcd_password_file.empty())
    return "etcd_user and etcd_password_file go together";
  if (o.etcd_prefix.size() < 2 || o.etcd_prefix.front() != '/'
      || o.etcd_prefix.back() != '/')
    return "etcd_prefix must start and end with '/' (e.g. /vb/)";
  if (o.instance_id.size() > 64)
    return "instance_id must be at most 64 characters";
  for (unsigned char c : o.instance_id)
    if (!std::isalnum(c) && c != '-' && c != '_' && c != '.')
      return "instance_id may hold letters, digits, '-', '_' and '.' only";
  if (o.cluster_host.empty())
    return "cluster_host must not be empty";
  if ((o.cluster_tls_cert.empty() || o.cluster_tls_key.empty()
       || o.cluster_tls_ca.empty())
      && !(o.cluster_tls_cert.empty() && o.cluster_tls_key.empty()
           && o.cluster_tls_ca.empty()))
    return "cluster_tls_cert, cluster_tls_key and cluster_tls_ca go together "
           "(mutual TLS between instances)";
  if (!std::isfinite(o.instance_ttl) || o.instance_ttl < 2
      || o.instance_ttl > 3600)
    return "instance_ttl must be between 2 and 3600 seconds";
  if (o.max_voice_peers < 2 || o.max_voice_peers > 64)
    return "max_voice_peers must be between 2 and 64";
  if (!positive(o.session_idle_timeout))
    return "session_idle_timeout must be a positive number of seconds";
  if (!std::isfinite(o.empty_lobby_grace) || o.empty_lobby_grace < 0)
    return "empty_lobby_grace must be 0 (off) or a positive number of seconds";
  if (!positive(o.signal_rate))
    return "signal_rate must be a positive number of messages per second";
  if (!positive(o.turn_ttl))
    return "turn_ttl must be a positive number of seconds";
  for (auto& u : o.stun_urls)
    if (auto why = check_ice_url(u, false); !why.empty())
      return "stun_urls: " + u + ": " + why;
  for (auto& u : o.turn_urls)
    if (auto why = check_ice_url(u, true); !why.empty())
      return "turn_urls: " + u + ": " + why;
  if (!o.turn_urls.empty() && o.turn_secret_file.empty())
    return "turn_urls need turn_secret_file (coturn's static-auth-secret)";
  if (o.turn_urls.empty() && !o.turn_secret_file.empty())
    return "turn_secret_file without turn_urls: no TURN server to use it";
  return {};
}

std::string default_config_json() {
  return to_json(server_options{}).dump(2);
}

} // namespace vb
