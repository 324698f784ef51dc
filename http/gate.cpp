#include "http/gate.hpp"

#include "http/error_map.hpp"
#include "http/metrics.hpp"
#include "model/clock.hpp"

namespace vb {

namespace {

/// The quota key of a caller: its token's subject, else its address (the
/// prefixes keep a subject from ever sharing an address's bucket).
std::string quota_key(const route_call& c, const access_claims* claims) {
  if (claims && !claims->subject.empty())
    return "sub:" + claims->subject;
  return "ip:" + std::string{c.req.client};
}

std::optional<caller> check_token(route_call& c) {
  auto check = c.ctx.access->verify(access_verifier::bearer(c.req.authorization),
                                    unix_now());
  if (!check) {
    c.respond(access_refusal(*c.ctx.metrics, check.error, check.detail));
    return std::nullopt;
  }
  caller who;
  who.quota_key = quota_key(c, &check.claims);
  who.claims = std::move(check.claims);
  return who;
}

} // namespace

std::optional<caller> authenticate(route_call& c) {
  if (!c.ctx.access)
    return caller{std::nullopt, quota_key(c, nullptr)};
  return check_token(c);
}

std::optional<caller> authenticate_read(route_call& c) {
  if (!c.ctx.access || !c.ctx.opts.access_required_for_reads)
    return caller{std::nullopt, quota_key(c, nullptr)};
  return check_token(c);
}

bool forbidden(route_call& c, const std::optional<std::string>& why) {
  if (!why)
    return false;
  c.respond(access_refusal(*c.ctx.metrics, access_error::forbidden, *why));
  return true;
}

void within_quota(route_call& c, quota q, const caller& who,
                  std::function<void()> then) {
  auto& quotas = c.ctx.quotas;
  auto limit = q == quota::joins ? c.ctx.opts.max_joins_per_client_per_minute
                                 : c.ctx.opts.max_lobbies_per_client_per_hour;
  if (!quotas || limit == 0)
    return then();
  auto metrics = c.ctx.metrics;
  quotas(q, who.quota_key,
         [q, metrics, respond = c.respond,
          then = std::move(then)](std::optional<double> wait) {
           if (!wait)
             return then();
           metrics->refused(q);
           respond(rate_limited_reply(q == quota::joins
                                        ? "Too many joins from this client, "
                                          "retry later"
                                        : "Too many lobbies created by this "
                                          "client, retry later",
                                      *wait));
         });
}

std::string socket_token(std::string_view authorization,
                         std::string_view query) {
  auto token = access_verifier::bearer(authorization);
  return std::string{token.empty() ? access_token_param(query) : token};
}

std::optional<api_reply> socket_refusal(const api& a, std::string_view token,
                                        const std::string& lobby_id) {
  if (!a.reads_need_access())
    return std::nullopt;
  auto check = a.access()->verify(token, unix_now());
  if (!check)
    return access_refusal(a.metrics(), check.error, check.detail);
  if (auto why = check.claims.forbids_lobby(lobby_id))
    return access_refusal(a.metrics(), access_error::forbidden, *why);
  return std::nullopt;
}

api_reply access_refusal(const http_metrics& metrics, access_error error,
                         const std::string& detail) {
  metrics.refused(error);
  auto r = api::error(status_of(error), detail, to_string(error));
  // RFC 6750 §3: a 401 names the scheme, and what was wrong with a token.
  if (error == access_error::missing)
    r.headers.emplace_back("WWW-Authenticate", R"(Bearer realm="voicebot")");
  else if (error != access_error::forbidden)
    r.headers.emplace_back("WWW-Authenticate",
                           R"(Bearer realm="voicebot", error="invalid_token")");
  else
    r.headers.emplace_back(
      "WWW-Authenticate",
      R"(Bearer realm="voicebot", error="insufficient_scope")");
  return r;
}

} // namespace vb
