#include "model/ice.hpp"

#include <cmath>

#include <nlohmann/json.hpp>

#include "model/secret.hpp"

namespace vb {

namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

} // namespace

std::string check_ice_url(std::string_view url, bool turn) {
  std::string_view rest;
  if (turn && starts_with(url, "turn:"))
    rest = url.substr(5);
  else if (turn && starts_with(url, "turns:"))
    rest = url.substr(6);
  else if (!turn && starts_with(url, "stun:"))
    rest = url.substr(5);
  else
    return turn ? "a TURN URL starts with turn: or turns:"
                : "a STUN URL starts with stun:";
  for (unsigned char c : url)
    if (c <= ' ' || c == 0x7f)
      return "no spaces or control characters in an ICE server URL";
  // host[:port][?transport=udp|tcp]: a host at least.
  if (rest.empty() || rest[0] == ':' || rest[0] == '?')
    return "an ICE server URL names a host";
  return {};
}

nlohmann::json ice_servers(const ice_options& o, std::string_view session_id,
                           double now) {
  auto out = nlohmann::json::array();
  if (!o.stun_urls.empty())
    out.push_back({{"urls", o.stun_urls}});
  if (!o.turn_urls.empty()) {
    auto expiry = static_cast<long long>(std::floor(now + o.turn_ttl));
    auto username = std::to_string(expiry) + ":" + std::string{session_id};
    out.push_back({{"urls", o.turn_urls},
                   {"username", username},
                   {"credential", base64(hmac_sha1(o.turn_secret, username))}});
  }
  return out;
}

} // namespace vb
