#include "model/access_token.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>

#include <jwt.h>
#include <nlohmann/json.hpp>

namespace vb {

using json = nlohmann::json;

namespace {

/// Longer than any token a backend mints (a few hundred bytes), and short
/// enough that a flood of junk costs no more than a header block.
constexpr std::size_t max_token_bytes = 4096;
/// A subject is a quota's key: bounded like one.
constexpr std::size_t max_subject_bytes = 256;

access_check refusal(access_error e, std::string detail) {
  access_check c;
  c.error = e;
  c.detail = std::move(detail);
  return c;
}

struct jwt_deleter {
  void operator()(jwt_t* j) const {
    jwt_free(j);
  }
};

/// Reads the claims libjwt decoded; an error names the claim that is wrong.
std::optional<std::string> read_claims(const json& j, access_claims& out) {
  if (!j.is_object())
    return "its claims are not an object";
  auto exp = j.find("exp");
  if (exp == j.end() || !exp->is_number() || !std::isfinite(exp->get<double>()))
    return "it has no exp (a number of unix seconds)";
  out.expires_at = exp->get<double>();
  if (auto sub = j.find("sub"); sub != j.end()) {
    if (!sub->is_string() || sub->get_ref<const std::string&>().size()
                               > max_subject_bytes)
      return "its sub is not a string of at most 256 bytes";
    out.subject = sub->get<std::string>();
  }
  if (auto lobby = j.find("lobby"); lobby != j.end()) {
    if (!lobby->is_string() || lobby->get_ref<const std::string&>().empty())
      return "its lobby is not a lobby id or \"*\"";
    out.lobby = lobby->get<std::string>();
    out.any_lobby = out.lobby == "*";
  }
  if (auto bots = j.find("bots"); bots != j.end()) {
    if (bots->is_string() && bots->get_ref<const std::string&>() == "*") {
      out.any_bot = true;
    } else if (bots->is_array()) {
      for (auto& b : *bots) {
        if (!b.is_string())
          return "its bots are not a list of bot names or \"*\"";
        out.bots.push_back(b.get<std::string>());
      }
    } else {
      return "its bots are not a list of bot names or \"*\"";
    }
  }
  if (auto create = j.find("create_lobby"); create != j.end()) {
    if (!create->is_boolean())
      return "its create_lobby is not true or false";
    out.create_lobby = create->get<bool>();
  }
  return std::nullopt;
}

} // namespace

const char* to_string(access_error e) {
  switch (e) {
    case access_error::none: return "none";
    case access_error::missing: return "access_token_missing";
    case access_error::invalid: return "access_token_invalid";
    case access_error::expired: return "access_token_expired";
    case access_error::forbidden: return "access_forbidden";
  }
  return "unknown";
}

unsigned status_of(access_error e) {
  return e == access_error::forbidden ? 403 : 401;
}

std::optional<std::string>
access_claims::forbids_lobby(std::string_view lobby_id) const {
  if (any_lobby || (!lobby.empty() && lobby == lobby_id))
    return std::nullopt;
  if (lobby.empty())
    return "This access token is good for no lobby";
  return "This access token is good for another lobby";
}

std::optional<std::string>
access_claims::forbids_join(std::string_view lobby_id,
                            std::string_view bot) const {
  if (auto why = forbids_lobby(lobby_id))
    return why;
  if (any_bot || std::find(bots.begin(), bots.end(), bot) != bots.end())
    return std::nullopt;
  return "This access token may not make bot '" + std::string{bot} + "' join";
}

std::optional<std::string> access_claims::forbids_create() const {
  if (create_lobby)
    return std::nullopt;
  return std::string{"This access token may not create lobbies"};
}

access_verifier::access_verifier(std::string secret)
  : secret_(std::move(secret)) {
}

access_check access_verifier::verify(std::string_view token,
                                     double now) const {
  if (token.empty())
    return refusal(access_error::missing, "Access token required");
  if (token.size() > max_token_bytes
      || token.find('\0') != std::string_view::npos)
    return refusal(access_error::invalid, "Invalid access token");
  // libjwt splits the token, decodes it and checks the signature against
  // the algorithm its header names, any of them: the algorithm is checked
  // here, so a token signed otherwise with the same secret (HS384), or not
  // at all ("none"), never counts.
  std::string text{token};
  jwt_t* raw = nullptr;
  auto rc = jwt_decode(&raw, text.c_str(),
                       reinterpret_cast<const unsigned char*>(secret_.data()),
                       static_cast<int>(secret_.size()));
  std::unique_ptr<jwt_t, jwt_deleter> decoded{raw};
  if (rc != 0 || !decoded)
    return refusal(access_error::invalid,
                   "Invalid access token: not an HS256 JWT signed by this "
                   "server's secret");
  if (jwt_get_alg(decoded.get()) != JWT_ALG_HS256)
    return refusal(access_error::invalid,
                   "Invalid access token: only HS256 is accepted");
  std::unique_ptr<char, decltype(&std::free)> grants{
    jwt_get_grants_json(decoded.get(), nullptr), &std::free};
  if (!grants)
    return refusal(access_error::invalid, "Invalid access token: no claims");
  auto claims_json = json::parse(grants.get(), nullptr, false);
  access_check ok;
  if (auto why = read_claims(claims_json, ok.claims))
    return refusal(access_error::invalid, "Invalid access token: " + *why);
  if (ok.claims.expires_at <= now)
    return refusal(access_error::expired, "Access token expired");
  if (auto nbf = claims_json.find("nbf"); nbf != claims_json.end()) {
    if (!nbf->is_number())
      return refusal(access_error::invalid,
                     "Invalid access token: its nbf is not a number");
    if (nbf->get<double>() > now)
      return refusal(access_error::invalid,
                     "Invalid access token: not valid yet (nbf)");
  }
  return ok;
}

std::string_view access_verifier::bearer(std::string_view authorization) {
  // RFC 6750 §2.1: "Bearer" (any case), one or more spaces, the token.
  constexpr std::string_view scheme = "bearer";
  if (authorization.size() <= scheme.size())
    return {};
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    auto c = authorization[i];
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
    if (c != scheme[i])
      return {};
  }
  auto rest = authorization.substr(scheme.size());
  if (rest.front() != ' ')
    return {};
  auto start = rest.find_first_not_of(' ');
  if (start == std::string_view::npos)
    return {};
  rest.remove_prefix(start);
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t'))
    rest.remove_suffix(1);
  return rest;
}

std::string_view access_token_param(std::string_view query) {
  constexpr std::string_view name = "access_token=";
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    if (pair.substr(0, name.size()) == name)
      return pair.substr(name.size());
    if (amp == std::string_view::npos)
      break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

std::string redact_access_token(std::string_view target) {
  auto q = target.find('?');
  if (q == std::string_view::npos)
    return std::string{target};
  std::string out{target.substr(0, q + 1)};
  auto query = target.substr(q + 1);
  constexpr std::string_view name = "access_token=";
  bool first = true;
  while (true) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    if (!first)
      out += '&';
    first = false;
    if (pair.substr(0, name.size()) == name) {
      out += name;
      out += "REDACTED";
    } else {
      out += pair;
    }
    if (amp == std::string_view::npos)
      break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

} // namespace vb
