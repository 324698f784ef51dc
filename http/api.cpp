#include "http/api.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <unordered_set>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/stats.hpp"
#include "http/bridge.hpp"
#include "http/error_map.hpp"
#include "http/metrics.hpp"
#include "http/openapi.hpp"
#include "http/routes.hpp"
#include "http/web_assets.hpp"
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
  return api_reply{status, dump(j), {}, nullptr};
}

api_reply validation_failed(const request_error& e) {
  return api_reply{static_cast<unsigned>(e.status), render(e), {}, nullptr};
}

api_reply validation_failed(field_error e) {
  request_error err;
  err.status = 422;
  err.code = "validation_error";
  err.errors.push_back(std::move(e));
  return validation_failed(err);
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

json session_json(const session& s, const std::string& lobby_id) {
  json j = s;
  j["lobby_id"] = lobby_id;
  return j;
}

// -- cached renderings of the registry's catalog -------------------------------

/// What one CAF worker thread rendered of the catalog at one version: list
/// responses are rebuilt only when the registry changed.
struct catalog_cache {
  uint64_t version = 0;
  std::shared_ptr<const std::string> providers;
  std::shared_ptr<const std::string> bots;
};

const catalog_cache& rendered(const provider_catalog& c) {
  thread_local catalog_cache cache;
  if (cache.version == c.version && cache.providers)
    return cache;
  json providers = json::array();
  json bots = json::array();
  json owners = json::object();
  std::unordered_set<std::string> owned_by_online;
  for (auto& p : c.providers) {
    providers.push_back(p);
    auto online = p.status == provider_status::online;
    for (auto& b : p.bots) {
      bots.push_back(
        {{"name", b.name}, {"description", b.description}, {"provider_id", p.provider_id}});
      // A bot offered by several providers maps to the first online one.
      if (!owners.contains(b.name)
          || (online && owned_by_online.count(b.name) == 0)) {
        owners[b.name] = p.provider_id;
        if (online)
          owned_by_online.insert(b.name);
      }
    }
  }
  cache.version = c.version;
  cache.providers = std::make_shared<const std::string>(
    dump(json{{"providers", std::move(providers)}}));
  cache.bots = std::make_shared<const std::string>(
    dump(json{{"bots", std::move(bots)}, {"providers", std::move(owners)}}));
  return cache;
}

} // namespace

api_reply api::error(unsigned status, std::string_view detail,
                     std::string_view code) {
  return api_reply{status, error_body(detail, code), {}, nullptr};
}

api::api(backend be, server_options opts,
         std::shared_ptr<const http_metrics> metrics)
  : be_(std::move(be)),
    opts_(std::move(opts)),
    metrics_(std::move(metrics)),
    started_(std::chrono::steady_clock::now()),
    join_timeout_(std::chrono::duration_cast<caf::timespan>(
      std::chrono::duration<double>(
        (static_cast<double>(opts_.failover_attempts) + 1)
          * (opts_.dispatch_timeout + 1)
        + 10))),
    openapi_(std::make_shared<const std::string>(
      openapi_document(opts_.base_path))),
    docs_(std::make_shared<const std::string>(docs_page())) {
}

void api::find_lobby(const std::string& lobby_id,
                     std::function<void(api_reply, lobby_actor)> found) const {
  if (auto err = check_id_path(lobby_id, "lobby_id"))
    return found(validation_failed(std::move(*err)), lobby_actor{});
  be_.sys->spawn([=, target = be_.lobbies](caf::event_based_actor* self) {
    self->request(target, bridge_timeout, atom::subscribe_v, lobby_id)
      .then([=](lobby_actor& l) { found(api_reply{}, l); },
            [=](caf::error& err) { found(error_reply(err), lobby_actor{}); });
  });
}

void api::metrics(api_respond respond) const {
  // Providers by status come from the registry's catalog (the same cached
  // value the listing uses); everything else from atomics.
  auto stats = be_.stats;
  auto http = metrics_;
  auto up = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                          - started_)
              .count();
  ask<provider_catalog_ptr>(
    *be_.sys, be_.registry, std::move(respond),
    [stats, http, up](provider_catalog_ptr& c) {
      provider_counts counts{};
      for (auto& p : c->providers)
        ++counts.at(static_cast<std::size_t>(p.status));
      api_reply r{200, render_metrics(*http, *stats, counts, up), {}, nullptr};
      r.headers.emplace_back("Content-Type", metrics_content_type);
      return r;
    },
    atom::list_v);
}

int api::handle(const api_request& req, api_respond respond) const {
  // The lobby page and its files (embedded from web/ at build time).
  if (req.method == "GET") {
    if (req.path.empty()) {
      // "/base" → "/base/", so the page's relative URLs resolve under it.
      auto r = api_reply{308, {}, {}, nullptr};
      r.headers.emplace_back("Location", opts_.base_path + "/");
      respond(std::move(r));
      return -1;
    }
    if (auto asset = find_web_asset(req.path == "/" ? "/index.html" : req.path)) {
      api_reply r{200, {}, {}, asset->body};
      r.headers.emplace_back("Content-Type", asset->content_type);
      r.headers.emplace_back("Cache-Control", "no-cache");
      respond(std::move(r));
      return -1;
    }
  }
  auto m = match_route(req.method, req.path);
  handle(m, req, std::move(respond));
  return m.index;
}

void api::handle(route_match& m, const api_request& req,
                 api_respond respond) const {
  auto& sys = *be_.sys;
  auto& p = m.params;
  // Path parameters are checked before anything reaches an actor.
  auto check_id = [&](size_t i, const char* name) {
    auto err = check_id_path(p.at(i), name);
    if (err)
      respond(validation_failed(std::move(*err)));
    return !err;
  };
  switch (m.id) {
    case route_id::health: {
      // The hottest route: formatted directly, no JSON tree.
      auto& st = *be_.stats;
      auto up = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                              - started_)
                  .count();
      char buf[160];
      auto n = std::snprintf(
        buf, sizeof(buf),
        R"({"status":"ok","version":"%s","uptime_s":%.3f,"providers":%llu,"lobbies":%llu})",
        VB_VERSION, std::floor(up * 1000) / 1000,
        static_cast<unsigned long long>(
          st.providers.load(std::memory_order_relaxed)),
        static_cast<unsigned long long>(
          st.lobbies.load(std::memory_order_relaxed)));
      return respond(api_reply{200, std::string(buf, static_cast<size_t>(n)),
                               {}, nullptr});
    }
    case route_id::openapi:
      return respond(api_reply{200, {}, {}, openapi_});
    case route_id::docs:
      return respond(api_reply{200,
                               {},
                               {{"Content-Type", "text/html; charset=utf-8"}},
                               docs_});
    case route_id::metrics:
      return metrics(std::move(respond));
    case route_id::lobby_list:
      return ask<std::vector<lobby>>(
        sys, be_.lobbies, respond,
        [](std::vector<lobby>& ls) {
          json list = json::array();
          for (auto& l : ls)
            list.push_back(lobby_summary(l));
          return ok(200, json{{"lobbies", std::move(list)}});
        },
        atom::list_v);
    case route_id::lobby_create: {
      auto parsed = parse_lobby_create(req.body);
      if (!parsed)
        return respond(validation_failed(parsed.error));
      return ask<lobby_created>(
        sys, be_.lobbies, respond,
        [](lobby_created& c) { return ok(c.created ? 201 : 200, json(c.value)); },
        atom::create_v, *parsed.value);
    }
    case route_id::lobby_get:
      if (!check_id(0, "lobby_id"))
        return;
      return ask<lobby>(
        sys, be_.lobbies, respond, [](lobby& l) { return ok(200, json(l)); },
        atom::get_v, p[0]);
    case route_id::session_create: {
      if (!check_id(0, "lobby_id"))
        return;
      auto parsed = parse_session_create(req.body);
      if (!parsed)
        return respond(validation_failed(parsed.error));
      auto lobby_id = p[0];
      return ask<session>(
        sys, be_.lobbies, respond,
        [lobby_id](session& s) { return ok(201, session_json(s, lobby_id)); },
        atom::add_v, lobby_id, parsed.value->nick);
    }
    case route_id::session_delete:
      if (!check_id(0, "lobby_id") || !check_id(1, "session_id"))
        return;
      return ask<bool>(
        sys, be_.lobbies, respond, [](bool) { return api_reply{204, {}, {}, nullptr}; },
        atom::remove_v, p[0], p[1]);
    case route_id::provider_register: {
      auto parsed = parse_provider_registration(req.body);
      if (!parsed)
        return respond(validation_failed(parsed.error));
      return ask<std::string>(
        sys, be_.registry, respond,
        [](std::string& id) {
          return ok(200, json{{"provider_id", id}, {"status", "registered"}});
        },
        atom::registration_v, *parsed.value);
    }
    case route_id::provider_list:
      return ask<provider_catalog_ptr>(
        sys, be_.registry, respond,
        [](provider_catalog_ptr& c) {
          return api_reply{200, {}, {}, rendered(*c).providers};
        },
        atom::list_v);
    case route_id::provider_get:
      if (!check_id(0, "provider_id"))
        return;
      return ask<provider>(
        sys, be_.registry, respond, [](provider& x) { return ok(200, json(x)); },
        atom::get_v, p[0]);
    case route_id::provider_heartbeat: {
      if (!check_id(0, "provider_id"))
        return;
      auto parsed = parse_heartbeat(req.body);
      if (!parsed)
        return respond(validation_failed(parsed.error));
      return ask<double>(
        sys, be_.registry, respond,
        [](double last_seen) {
          return ok(200, json{{"status", "ok"}, {"last_seen", last_seen}});
        },
        atom::heartbeat_v, p[0], *parsed.value);
    }
    case route_id::provider_delete: {
      if (!check_id(0, "provider_id"))
        return;
      std::string key{req.provider_key};
      if (key.empty()) {
        std::string decoded;
        if (percent_decode(query_param(req.query, "provider_key"), decoded))
          key = std::move(decoded);
      }
      // Removed on purpose: a tombstone keeps this instance out (SPEC §7).
      return ask<bool>(
        sys, be_.registry, respond, [](bool) { return api_reply{204, {}, {}, nullptr}; },
        atom::deregister_v, p[0], key, true);
    }
    case route_id::provider_drain: {
      if (!check_id(0, "provider_id"))
        return;
      auto parsed = parse_drain_request(req.body);
      if (!parsed)
        return respond(validation_failed(parsed.error));
      auto d = *parsed.value;
      if (d.provider_key.empty())
        d.provider_key = std::string{req.provider_key};
      d.by_operator = true;
      return ask<provider>(
        sys, be_.registry, respond, [](provider& x) { return ok(200, json(x)); },
        atom::drain_v, p[0], d);
    }
    case route_id::bot_list:
      return ask<provider_catalog_ptr>(
        sys, be_.registry, respond,
        [](provider_catalog_ptr& c) {
          return api_reply{200, {}, {}, rendered(*c).bots};
        },
        atom::list_v);
    case route_id::bot_join: {
      if (auto err = check_bot_name_path(p[0]))
        return respond(validation_failed(std::move(*err)));
      if (req.idempotency_key)
        if (auto err = check_idempotency_key(*req.idempotency_key))
          return respond(validation_failed(std::move(*err)));
      auto parsed = parse_join_request(req.body);
      if (!parsed)
        return respond(validation_failed(parsed.error));
      auto& j = *parsed.value;
      // Without a nick, the bot is known by its name.
      bot_join bj{p[0], j.nick.empty() ? p[0] : j.nick, j.provider_id};
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
      // With an Idempotency-Key (SPEC §7) the key's owner answers: the
      // first accepted answer again, or the join as the directory answers.
      if (req.idempotency_key && be_.idempotency)
        return ask_within<session>(
          join_timeout_, sys, be_.idempotency, respond, joined, atom::join_v,
          std::string{*req.idempotency_key}, join_fingerprint(p[0], j),
          lobby_id, bj);
      return ask_within<session>(join_timeout_, sys, be_.lobbies, respond,
                                 joined, atom::join_v, lobby_id, bj);
    }
    case route_id::bot_leave: {
      auto parsed = parse_leave_request(req.body);
      if (!parsed)
        return respond(validation_failed(parsed.error));
      auto session_id = parsed.value->session_id;
      return ask<std::string>(
        sys, be_.lobbies, respond,
        [session_id](std::string& lobby_id) {
          return ok(200, json{{"status", "left"},
                              {"session_id", session_id},
                              {"lobby_id", lobby_id}});
        },
        atom::leave_v, *parsed.value);
    }
    case route_id::lobby_events: {
      // Only a WebSocket upgrade is served here (http/lobby_socket.cpp).
      auto r = error(426, "WebSocket upgrade required", "upgrade_required");
      r.headers.emplace_back("Upgrade", "websocket");
      return respond(std::move(r));
    }
    case route_id::method_not_allowed: {
      auto r = error(405, "Method Not Allowed", "method_not_allowed");
      r.headers.emplace_back("Allow", m.allow);
      return respond(std::move(r));
    }
    case route_id::not_found:
      break;
  }
  respond(error(404, "Not Found", "not_found"));
}

} // namespace vb
