#include "http/api.hpp"
#include "http/voice_options.hpp"

#include <caf/all.hpp>

#include "http/bridge.hpp"
#include "http/error_map.hpp"
#include "http/openapi.hpp"
#include "http/routes.hpp"
#include "http/web_assets.hpp"
#include "model/access_token.hpp"
#include "model/validate.hpp"

namespace vb {

api_reply api::error(unsigned status, std::string_view detail,
                     std::string_view code) {
  return api_reply{status, error_body(detail, code), {}, nullptr, {}};
}

api::api(backend be, server_options opts,
         std::shared_ptr<const http_metrics> metrics, quota_hook quotas)
  : ctx_{std::move(be), std::move(opts), std::move(metrics),
         std::chrono::steady_clock::now(), caf::timespan{}, nullptr, nullptr,
         nullptr, nullptr, std::move(quotas)} {
  // The verifier keeps the secret; no other copy stays in the options.
  if (!ctx_.opts.access_secret.empty())
    ctx_.access = std::make_shared<const access_verifier>(
      std::exchange(ctx_.opts.access_secret, {}));
  ctx_.join_timeout = std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double>(
      (static_cast<double>(ctx_.opts.failover_attempts) + 1)
        * (ctx_.opts.dispatch_timeout + 1)
      + 10));
  ctx_.openapi = std::make_shared<const std::string>(
    openapi_document(ctx_.opts.base_path));
  ctx_.docs = std::make_shared<const std::string>(docs_page());
  auto voice = std::make_shared<voice_options>();
  voice->ice.stun_urls = ctx_.opts.stun_urls;
  voice->ice.turn_urls = ctx_.opts.turn_urls;
  voice->ice.turn_secret = ctx_.opts.turn_secret;
  voice->ice.turn_ttl = ctx_.opts.turn_ttl;
  voice->signal_rate = ctx_.opts.signal_rate;
  voice->stats = ctx_.be.stats;
  ctx_.voice = std::move(voice);
}

void api::find_lobby(const std::string& lobby_id,
                     std::function<void(api_reply, lobby_actor)> found) const {
  if (auto err = check_id_path(lobby_id, "lobby_id"))
    return found(error_reply(std::move(*err)), lobby_actor{});
  ctx_.be.sys->spawn([=, target = ctx_.be.lobbies](caf::event_based_actor* self) {
    self->request(target, bridge_timeout, atom::subscribe_v, lobby_id)
      .then([=](lobby_actor& l) { found(api_reply{}, l); },
            [=](caf::error& err) { found(error_reply(err), lobby_actor{}); });
  });
}

int api::handle(const api_request& req, api_respond respond) const {
  // The lobby page and its files (embedded from web/ at build time) come
  // before the routes: they are served at the base path's root.
  if (req.method == "GET") {
    if (req.path.empty()) {
      // "/base" → "/base/", so the page's relative URLs resolve under it.
      auto r = api_reply{308, {}, {}, nullptr, {}};
      r.headers.emplace_back("Location", ctx_.opts.base_path + "/");
      respond(std::move(r));
      return -1;
    }
    // "/" is the lobby page, "/status" the operator's page.
    auto file = req.path == "/" ? std::string_view{"/index.html"}
                : req.path == "/status" ? std::string_view{"/status.html"}
                                        : std::string_view{req.path};
    if (auto asset = find_web_asset(file)) {
      api_reply r{200, {}, {}, asset->body, {}};
      r.headers.emplace_back("Content-Type", asset->content_type);
      r.headers.emplace_back("Cache-Control", "no-cache");
      if (asset->content_type.rfind("text/html", 0) == 0) {
        // The page loads its own files and talks to its own origin only
        // (fetches and the lobby WebSocket), and is never framed.
        r.headers.emplace_back(
          "Content-Security-Policy",
          "default-src 'self'; connect-src 'self'; object-src 'none'; "
          "base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
        r.headers.emplace_back("X-Frame-Options", "DENY");
      }
      respond(std::move(r));
      return -1;
    }
  }
  auto m = api_router().match(req.method, req.path);
  if (!m.route) {
    if (m.allow.empty()) {
      respond(error(404, "Not Found", "not_found"));
      return -1;
    }
    auto r = error(405, "Method Not Allowed", "method_not_allowed");
    r.headers.emplace_back("Allow", m.allow);
    respond(std::move(r));
    return -1;
  }
  route_call call{ctx_, req, m.params, respond};
  m.route->handler(call);
  return m.index;
}

} // namespace vb
