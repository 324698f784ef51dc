// The ICE servers a voice peer gets in its `welcome` (SPEC §9): STUN and
// TURN URLs as browsers' RTCIceServer objects, TURN with coturn's REST API
// credentials (`use-auth-secret`), new on every welcome.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace vb {

struct ice_options {
  std::vector<std::string> stun_urls; // --stun-url (stun:)
  std::vector<std::string> turn_urls; // --turn-url (turn:, turns:)
  /// coturn's static-auth-secret (--turn-secret-file); never logged.
  std::string turn_secret;
  /// How long a TURN credential is good for, in seconds (--turn-ttl).
  double turn_ttl = 86400;
};

/// Why a --stun-url (`turn` false) or --turn-url (`turn` true) is refused;
/// empty when it is fine: a `stun:` URL, or a `turn:`/`turns:` one, with a
/// host and no spaces or control characters.
std::string check_ice_url(std::string_view url, bool turn);

/// The `ice_servers` of a welcome for `session_id` at unix time `now`: `[]`
/// with none configured; the STUN URLs as one server; the TURN URLs as one
/// server with `username` "<unix expiry>:<session_id>" and `credential`
/// base64(HMAC-SHA1(secret, username)).
nlohmann::json ice_servers(const ice_options& o, std::string_view session_id,
                           double now);

} // namespace vb
