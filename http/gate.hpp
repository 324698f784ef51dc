// The gate of a route's handler (docs/security.md): the frontend access
// token (401 without a good one, 403 when it does not cover the request)
// and the per-client quotas (429). Handlers pass it in this order:
// authenticate, validate the request, check the token's scope, take the
// quota, then ask the actors; so a refusal at any step changes nothing.
// No Beast, no CAF here.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "http/api.hpp"
#include "model/access_token.hpp"

namespace vb {

/// Who asks: the token's claims (none: access control is off, or an open
/// read), and the key its quotas count under.
struct caller {
  std::optional<access_claims> claims;
  /// "sub:SUBJECT" with a token naming a subject, else "ip:CLIENT".
  std::string quota_key;
};

/// A request that changes state: with access control on, its bearer token
/// must be good (else 401 is answered here and nullopt returned).
std::optional<caller> authenticate(route_call& c);

/// A read: as authenticate with --access-required-for-reads, else open.
std::optional<caller> authenticate_read(route_call& c);

/// Answers 403 when the token forbids the request (`why` is set); true
/// when it did.
bool forbidden(route_call& c, const std::optional<std::string>& why);

/// The same with the caller's claims: `why(claims)` says what its token
/// does not cover. A caller without claims is never forbidden.
template <class Why>
bool forbidden(route_call& c, const caller& who, Why why) {
  return who.claims && forbidden(c, why(*who.claims));
}

/// Takes one of the caller's `q`, then runs `then`: at once without
/// quotas, else once admitted, on any thread (it must own what it uses).
/// Past the quota 429 is answered and `then` never runs.
void within_quota(route_call& c, quota q, const caller& who,
                  std::function<void()> then);

/// A lobby WebSocket's token: the upgrade's Authorization header, or the
/// access_token query parameter (a browser cannot set headers on a
/// WebSocket); empty when neither.
std::string socket_token(std::string_view authorization,
                         std::string_view query);

/// The refusal of a lobby WebSocket's upgrade for `lobby_id`: when reads
/// need a token and `token` is missing, bad or for another lobby.
std::optional<api_reply> socket_refusal(const api& a, std::string_view token,
                                        const std::string& lobby_id);

/// The 401 or 403 answer of a refused token, counted in the metrics.
api_reply access_refusal(const http_metrics& metrics, access_error error,
                         const std::string& detail);

} // namespace vb
