// Frontend access tokens (docs/security.md, "Frontend access tokens"): a
// JWT that the deployer's backend signs with HMAC-SHA256 and the secret of
// --access-secret-file, and whose claims say what its holder may do (which
// lobby, which bots, whether it may create lobbies). libjwt checks the
// token's form and signature; only HS256 is taken. Plain functions and
// values, no sockets, nothing logged: the secret and the tokens stay here.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vb {

/// Why a token does not let a request through; each is an API `code`.
enum class access_error {
  none,
  missing,   // 401 access_token_missing: no bearer token
  invalid,   // 401 access_token_invalid: malformed, forged, not HS256, no exp
  expired,   // 401 access_token_expired: past its exp
  forbidden, // 403 access_forbidden: a good token that does not cover this
};

/// "access_token_missing", ...; "none" for none.
const char* to_string(access_error e);

/// The HTTP status of an access error: 401, or 403 for forbidden.
unsigned status_of(access_error e);

/// What a verified token allows (its claims).
struct access_claims {
  /// "sub": who it was given to; the quotas count per subject. May be empty.
  std::string subject;
  /// "exp", unix seconds.
  double expires_at = 0;
  /// "lobby": the one lobby it is good for, or any ("*"); none: no lobby.
  bool any_lobby = false;
  std::string lobby;
  /// "bots": the bots it may make join, or any ("*"); none: no bot.
  bool any_bot = false;
  std::vector<std::string> bots;
  /// "create_lobby": it may create lobbies.
  bool create_lobby = false;

  /// Why it may not act in `lobby_id` (a person's session, a leave, a
  /// hello, reading the lobby); none when it may.
  std::optional<std::string> forbids_lobby(std::string_view lobby_id) const;
  /// Why it may not make `bot` join `lobby_id`; none when it may.
  std::optional<std::string> forbids_join(std::string_view lobby_id,
                                          std::string_view bot) const;
  /// Why it may not create a lobby; none when it may.
  std::optional<std::string> forbids_create() const;
};

/// The outcome of a check: an error with what to tell the client, or the
/// claims.
struct access_check {
  access_error error = access_error::none;
  std::string detail;
  access_claims claims;

  explicit operator bool() const {
    return error == access_error::none;
  }
};

/// Checks tokens against the deployer's secret. Immutable once made: the
/// I/O threads share one.
class access_verifier {
public:
  /// `secret`: the bytes of --access-secret-file (trailing newlines cut).
  explicit access_verifier(std::string secret);

  /// Verifies `token` at `now` (unix seconds): an HS256 signature by the
  /// secret, an `exp` still ahead (and `nbf`, when given, behind), and
  /// claims of the right types.
  access_check verify(std::string_view token, double now) const;

  /// The token of an Authorization header ("Bearer TOKEN", the scheme in
  /// any case); empty when the header is absent or another scheme.
  static std::string_view bearer(std::string_view authorization);

private:
  std::string secret_;
};

/// `target` with the value of an `access_token` query parameter (a lobby
/// WebSocket's, docs/security.md) replaced by "REDACTED": what the logs
/// show of a request's target.
std::string redact_access_token(std::string_view target);

/// The raw value of the `access_token` query parameter; empty when none.
std::string_view access_token_param(std::string_view query);

} // namespace vb
