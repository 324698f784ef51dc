// The route table with its handlers, grouped per resource: the service
// itself (health, the OpenAPI document, /docs, /metrics), lobbies,
// providers, bots. A handler checks what it can without an actor (path
// parameters, the body), then asks one actor through the bridge
// (http/bridge.hpp); the actor's answer or error becomes the reply. The
// routes that change state for a frontend (and, when configured, its reads)
// pass the gate first (http/gate.hpp: access token, scope, quota).
#include <chrono>
#include <cmath>
#include <cstdio>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/stats.hpp"
#include "http/api.hpp"
#include "http/bridge.hpp"
#include "http/catalog_cache.hpp"
#include "http/error_map.hpp"
#include "http/gate.hpp"
#include "http/lobby_cache.hpp"
#include "http/metrics.hpp"
#include "http/routes.hpp"
#include "model/idempotency_codec.hpp"
#include "model/json.hpp"
#include "model/validate.hpp"

namespace vb {

using json = nlohmann::json;

namespace {

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

api_reply ok(unsigned status, const json& j) {
  return api_reply{status, dump(j), {}, nullptr, {}};
}

api_reply no_content() {
  return api_reply{204, {}, {}, nullptr, {}};
}

/// Answers a refused path parameter or header; true when `err` is set.
bool refused(route_call& c, std::optional<field_error> err) {
  if (!err)
    return false;
  c.respond(error_reply(std::move(*err)));
  return true;
}

/// Answers a refused body; true when the parse failed.
template <class Parsed>
bool refused(route_call& c, const Parsed& parsed) {
  if (parsed)
    return false;
  c.respond(error_reply(parsed.error));
  return true;
}

/// A query parameter's raw value, or empty.
std::string_view query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name && eq != std::string_view::npos)
      return pair.substr(eq + 1);
    if (amp == std::string_view::npos)
      break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

double uptime(const api_context& ctx) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now()
                                       - ctx.started)
    .count();
}

// -- the service: health, the API's description, metrics ---------------------

namespace service {

void health(route_call& c) {
  // The hottest route: formatted directly, no JSON tree.
  auto& st = *c.ctx.be.stats;
  char buf[160];
  auto n = std::snprintf(
    buf, sizeof(buf),
    R"({"status":"ok","version":"%s","uptime_s":%.3f,"providers":%llu,"lobbies":%llu})",
    VB_VERSION, std::floor(uptime(c.ctx) * 1000) / 1000,
    static_cast<unsigned long long>(
      st.providers.load(std::memory_order_relaxed)),
    static_cast<unsigned long long>(st.lobbies.load(std::memory_order_relaxed)));
  std::string body(buf, static_cast<size_t>(n));
  // Cluster mode (SPEC §8): whether etcd takes changes now. Health itself
  // never depends on it.
  if (st.store.load(std::memory_order_relaxed) != store_state::embedded)
    body.insert(body.size() - 1, st.store_unavailable()
                                   ? R"(,"store":"unavailable")"
                                   : R"(,"store":"ok")");
  c.respond(api_reply{200, std::move(body), {}, nullptr, {}});
}

void openapi(route_call& c) {
  c.respond(api_reply{200, {}, {}, c.ctx.openapi, {}});
}

void docs(route_call& c) {
  // One page with its script and style inline; it fetches the document
  // from its own origin and loads nothing else.
  c.respond(api_reply{
    200,
    {},
    {{"Content-Type", "text/html; charset=utf-8"},
     {"Content-Security-Policy",
      "default-src 'none'; script-src 'unsafe-inline'; style-src "
      "'unsafe-inline'; connect-src 'self'; base-uri 'none'; "
      "frame-ancestors 'none'"},
     {"X-Frame-Options", "DENY"}},
    c.ctx.docs,
    {}});
}

void metrics(route_call& c) {
  // Providers by status come from the registry's catalog (the same cached
  // value the listing uses); everything else from atomics.
  auto stats = c.ctx.be.stats;
  auto http = c.ctx.metrics;
  auto up = uptime(c.ctx);
  ask<provider_catalog_ptr>(
    *c.ctx.be.sys, c.ctx.be.registry, c.respond,
    [stats, http, up](provider_catalog_ptr& cat) {
      provider_counts counts{};
      for (auto& p : cat->providers)
        ++counts.at(static_cast<std::size_t>(p.status));
      api_reply r{200, render_metrics(*http, *stats, counts, up), {}, nullptr,
                  {}};
      r.headers.emplace_back("Content-Type", metrics_content_type);
      return r;
    },
    atom::list_v);
}

std::vector<route_entry> routes() {
  return {
    {"GET", "/api/health", health},
    {"GET", "/api/openapi.json", openapi},
    {"GET", "/docs", docs},
    {"GET", "/metrics", metrics},
  };
}

} // namespace service

// -- lobbies and their sessions -----------------------------------------------

namespace lobbies {

void list(route_call& c) {
  if (!authenticate_read(c))
    return;
  ask<lobby_listing_ptr>(
    *c.ctx.be.sys, c.ctx.be.lobbies, c.respond,
    [cond = conditions(c.req)](lobby_listing_ptr& ls) {
      return conditional_reply(cond, rendered(*ls));
    },
    atom::list_v);
}

void create(route_call& c) {
  auto who = authenticate(c);
  if (!who)
    return;
  auto parsed = parse_lobby_create(c.req.body);
  if (refused(c, parsed)
      || forbidden(c, *who, [](auto& a) { return a.forbids_create(); }))
    return;
  within_quota(
    c, quota::lobbies, *who,
    [ctx = &c.ctx, respond = c.respond, value = *parsed.value] {
      ask<lobby_created>(
        *ctx->be.sys, ctx->be.lobbies, respond,
        [](lobby_created& r) {
          return ok(r.created ? 201 : 200, json(r.value));
        },
        atom::create_v, value);
    });
}

void get(route_call& c) {
  auto who = authenticate_read(c);
  if (!who || refused(c, check_id_path(c.params[0], "lobby_id"))
      || forbidden(c, *who,
                   [&](auto& a) { return a.forbids_lobby(c.params[0]); }))
    return;
  ask<lobby>(
    *c.ctx.be.sys, c.ctx.be.lobbies, c.respond,
    [](lobby& l) { return ok(200, json(l)); }, atom::get_v, c.params[0]);
}

void add_session(route_call& c) {
  auto who = authenticate(c);
  if (!who || refused(c, check_id_path(c.params[0], "lobby_id")))
    return;
  auto parsed = parse_session_create(c.req.body);
  if (refused(c, parsed)
      || forbidden(c, *who,
                   [&](auto& a) { return a.forbids_lobby(c.params[0]); }))
    return;
  auto lobby_id = c.params[0];
  ask<person_session>(
    *c.ctx.be.sys, c.ctx.be.lobbies, c.respond,
    [lobby_id](person_session& p) {
      json j = p.value;
      j["lobby_id"] = lobby_id;
      // The only place the token is ever shown (SPEC §9).
      j["session_token"] = std::move(p.token);
      return ok(201, j);
    },
    atom::add_v, lobby_id, parsed.value->nick);
}

void remove_session(route_call& c) {
  auto who = authenticate(c);
  if (!who || refused(c, check_id_path(c.params[0], "lobby_id"))
      || refused(c, check_id_path(c.params[1], "session_id"))
      || forbidden(c, *who,
                   [&](auto& a) { return a.forbids_lobby(c.params[0]); }))
    return;
  ask<bool>(
    *c.ctx.be.sys, c.ctx.be.lobbies, c.respond,
    [](bool) { return no_content(); }, atom::remove_v, c.params[0],
    c.params[1]);
}

void events(route_call& c) {
  // Only a WebSocket upgrade is served here (http/lobby_socket.cpp).
  auto r = api::error(426, "WebSocket upgrade required", "upgrade_required");
  r.headers.emplace_back("Upgrade", "websocket");
  c.respond(std::move(r));
}

std::vector<route_entry> routes() {
  return {
    {"GET", "/api/lobby", list},
    {"POST", "/api/lobby", create},
    {"GET", "/api/lobby/{lobby_id}", get},
    {"POST", "/api/lobby/{lobby_id}/sessions", add_session},
    {"DELETE", "/api/lobby/{lobby_id}/sessions/{session_id}", remove_session},
    {"GET", "/ws/lobby/{lobby_id}", events, route_kind::websocket},
  };
}

} // namespace lobbies

// -- bot providers (SPEC §4, §7) ---------------------------------------------------

namespace providers {

void register_provider(route_call& c) {
  auto parsed = parse_provider_registration(c.req.body);
  if (refused(c, parsed))
    return;
  ask<std::string>(
    *c.ctx.be.sys, c.ctx.be.registry, c.respond,
    [](std::string& id) {
      return ok(200, json{{"provider_id", id}, {"status", "registered"}});
    },
    atom::registration_v, *parsed.value);
}

void list(route_call& c) {
  ask<provider_catalog_ptr>(
    *c.ctx.be.sys, c.ctx.be.registry, c.respond,
    [cond = conditions(c.req)](provider_catalog_ptr& cat) {
      return conditional_reply(cond, rendered(*cat).providers);
    },
    atom::list_v);
}

void get(route_call& c) {
  if (refused(c, check_id_path(c.params[0], "provider_id")))
    return;
  ask<provider>(
    *c.ctx.be.sys, c.ctx.be.registry, c.respond,
    [](provider& x) { return ok(200, json(x)); }, atom::get_v, c.params[0]);
}

void heartbeat(route_call& c) {
  if (refused(c, check_id_path(c.params[0], "provider_id")))
    return;
  auto parsed = parse_heartbeat(c.req.body);
  if (refused(c, parsed))
    return;
  ask<double>(
    *c.ctx.be.sys, c.ctx.be.registry, c.respond,
    [](double last_seen) {
      return ok(200, json{{"status", "ok"}, {"last_seen", last_seen}});
    },
    atom::heartbeat_v, c.params[0], *parsed.value);
}

void remove(route_call& c) {
  if (refused(c, check_id_path(c.params[0], "provider_id")))
    return;
  std::string key{c.req.provider_key};
  if (key.empty()) {
    std::string decoded;
    if (percent_decode(query_param(c.req.query, "provider_key"), decoded))
      key = std::move(decoded);
  }
  // Removed on purpose: a tombstone keeps this instance out (SPEC §7).
  ask<bool>(
    *c.ctx.be.sys, c.ctx.be.registry, c.respond,
    [](bool) { return no_content(); }, atom::deregister_v, c.params[0], key,
    true);
}

void drain(route_call& c) {
  if (refused(c, check_id_path(c.params[0], "provider_id")))
    return;
  auto parsed = parse_drain_request(c.req.body);
  if (refused(c, parsed))
    return;
  auto d = *parsed.value;
  if (d.provider_key.empty())
    d.provider_key = std::string{c.req.provider_key};
  d.by_operator = true;
  ask<provider>(
    *c.ctx.be.sys, c.ctx.be.registry, c.respond,
    [](provider& x) { return ok(200, json(x)); }, atom::drain_v, c.params[0],
    d);
}

std::vector<route_entry> routes() {
  return {
    {"POST", "/api/bots/providers/register", register_provider},
    {"GET", "/api/bots/providers", list},
    {"GET", "/api/bots/providers/{provider_id}", get},
    {"POST", "/api/bots/providers/{provider_id}/heartbeat", heartbeat},
    {"DELETE", "/api/bots/providers/{provider_id}", remove},
    {"POST", "/api/bots/providers/{provider_id}/drain", drain},
  };
}

} // namespace providers

// -- bots: the catalog, joins and leaves -----------------------------------------

namespace bots {

void list(route_call& c) {
  if (!authenticate_read(c))
    return;
  ask<provider_catalog_ptr>(
    *c.ctx.be.sys, c.ctx.be.registry, c.respond,
    [cond = conditions(c.req)](provider_catalog_ptr& cat) {
      return conditional_reply(cond, rendered(*cat).bots);
    },
    atom::list_v);
}

/// A join without a key, on its way to the lobby.
struct lobby_join {
  caf::timespan timeout;
  lobby_directory_actor directory;
  std::string lobby_id;
  bot_join bj;
  api_respond respond;
  std::function<api_reply(session&)> joined;
};
using lobby_join_ptr = std::shared_ptr<const lobby_join>;

/// Through the directory, which delegates to the lobby: the answer's
/// sender is the lobby, remembered on the connection's thread for the next
/// join (`forget`: a remembered lobby was gone).
void join_via_directory(caf::event_based_actor* self, lobby_join_ptr j,
                        bool forget) {
  self->request(j->directory, j->timeout, atom::join_v, j->lobby_id, j->bj)
    .then(
      [self, j](session& s) {
        auto r = j->joined(s);
        auto from = self->current_sender();
        if (from && from != caf::actor_cast<caf::strong_actor_ptr>(j->directory))
          r.then = [id = j->lobby_id, l = caf::actor_cast<lobby_actor>(from)] {
            remember_lobby(id, l);
          };
        j->respond(std::move(r));
      },
      [j, forget](caf::error& err) {
        auto r = error_reply(err);
        if (forget)
          r.then = [id = j->lobby_id] { forget_lobby(id); };
        j->respond(std::move(r));
      });
}

/// Straight to the lobby this thread knows; the directory again if its
/// actor is gone (the lobby was removed elsewhere).
void join_via_lobby(caf::event_based_actor* self, lobby_join_ptr j,
                    lobby_actor lobby) {
  self->request(lobby, j->timeout, atom::join_v, j->bj)
    .then([j](session& s) { j->respond(j->joined(s)); },
          [self, j](caf::error& err) {
            if (err == caf::sec::request_receiver_down)
              return join_via_directory(self, j, true);
            j->respond(error_reply(err));
          });
}

/// A join that passed its checks (and its quota), on its way: to the key's
/// owner with an Idempotency-Key, else to the lobby.
void start_join(const api_context& ctx, const api_respond& respond,
                const std::string& name, const std::optional<std::string>& key,
                const join_request& j) {
  // Without a nick, the bot is known by its name.
  bot_join bj{name, j.nick.empty() ? name : j.nick, j.provider_id};
  auto lobby_id = j.lobby_id;
  auto joined = [lobby_id](session& s) {
    return ok(200, json{{"status", "requested"},
                        {"bot_name", s.bot_name},
                        {"lobby_id", lobby_id},
                        {"session_id", s.session_id},
                        {"provider_id", s.provider_id},
                        {"run_id", s.run_id},
                        {"nick", s.nick}});
  };
  auto& be = ctx.be;
  // With an Idempotency-Key (SPEC §7) the key's owner answers: the first
  // accepted answer again, or the join as the directory answers.
  if (key && be.idempotency)
    return ask_within<session>(ctx.join_timeout, *be.sys, be.idempotency,
                               respond, joined, atom::join_v, *key,
                               join_fingerprint(name, j), lobby_id, bj);
  auto call = std::make_shared<const lobby_join>(
    lobby_join{ctx.join_timeout, be.lobbies, lobby_id, bj, respond, joined});
  // cached_lobby reads this thread's cache: on the quota's strand it may
  // miss, and the join goes through the directory.
  be.sys->spawn(
    [call, lobby = cached_lobby(lobby_id)](caf::event_based_actor* self) {
      if (lobby)
        join_via_lobby(self, call, lobby);
      else
        join_via_directory(self, call, false);
    });
}

void join(route_call& c) {
  auto who = authenticate(c);
  if (!who)
    return;
  auto& name = c.params[0];
  auto& key = c.req.idempotency_key;
  if (refused(c, check_bot_name_path(name))
      || (key && refused(c, check_idempotency_key(*key))))
    return;
  auto parsed = parse_join_request(c.req.body);
  if (refused(c, parsed) || forbidden(c, *who, [&](auto& a) {
        return a.forbids_join(parsed.value->lobby_id, name);
      }))
    return;
  auto owned_key = key ? std::optional<std::string>{std::string{*key}}
                       : std::nullopt;
  within_quota(c, quota::joins, *who,
               [ctx = &c.ctx, respond = c.respond, name, key = std::move(owned_key),
                j = *parsed.value] { start_join(*ctx, respond, name, key, j); });
}

void leave(route_call& c) {
  auto who = authenticate(c);
  if (!who)
    return;
  auto parsed = parse_leave_request(c.req.body);
  // A token for one lobby must name it: the session's lobby is not known
  // before the lobby directory is asked.
  if (refused(c, parsed) || forbidden(c, *who, [&](auto& a) {
        if (parsed.value->lobby_id.empty() && !a.any_lobby)
          return std::optional<std::string>{
            "This access token is good for one lobby: name its lobby_id"};
        return a.forbids_lobby(parsed.value->lobby_id);
      }))
    return;
  auto session_id = parsed.value->session_id;
  ask<std::string>(
    *c.ctx.be.sys, c.ctx.be.lobbies, c.respond,
    [session_id](std::string& lobby_id) {
      return ok(200, json{{"status", "left"},
                          {"session_id", session_id},
                          {"lobby_id", lobby_id}});
    },
    atom::leave_v, *parsed.value);
}

std::vector<route_entry> routes() {
  return {
    {"GET", "/api/bots", list},
    {"POST", "/api/bots/{bot_name}/join", join},
    {"POST", "/api/bots/leave", leave},
  };
}

} // namespace bots

} // namespace

const std::vector<route_entry>& route_table() {
  static const auto table = [] {
    std::vector<route_entry> all;
    for (auto group : {service::routes, lobbies::routes, providers::routes,
                       bots::routes}) {
      auto routes = group();
      all.insert(all.end(), routes.begin(), routes.end());
    }
    return all;
  }();
  return table;
}

} // namespace vb
