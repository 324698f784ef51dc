// The API behind the Beast front end: a request (method, path, body) becomes
// an actor message, and the actor's answer becomes a reply. No Beast here,
// and nothing here blocks: the reply comes through a callback, called once,
// inline (validation errors, health) or from a CAF thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "actors/interfaces.hpp"
#include "model/config.hpp"

namespace caf {
class actor_system;
}

namespace vb {

struct server_stats;
struct voice_options;
class http_metrics;

/// The actors and counters the front end talks to.
struct backend {
  caf::actor_system* sys = nullptr;
  registry_actor registry;
  lobby_directory_actor lobbies;
  std::shared_ptr<server_stats> stats;
  /// Joins with an Idempotency-Key header go here instead of to lobbies.
  idempotency_actor idempotency;
};

struct api_request {
  std::string_view method;
  std::string_view path;  // without the base path and the query
  std::string_view query; // without '?'
  std::string_view body;
  std::string_view provider_key; // the X-Provider-Key header
  /// The Idempotency-Key header, when the request has one (even empty).
  std::optional<std::string_view> idempotency_key;
  /// The If-None-Match and Accept-Encoding headers (empty when absent): the
  /// polled listings answer 304 or gzip with them (http/catalog_cache.hpp).
  std::string_view if_none_match;
  std::string_view accept_encoding;
};

struct api_reply {
  unsigned status = 200;
  std::string body; // JSON; empty for 204
  std::vector<std::pair<std::string, std::string>> headers;
  /// A large cached body, written without a copy (used instead of `body`).
  std::shared_ptr<const std::string> shared_body;
  /// Runs on the connection's thread before the reply is written (a
  /// thread's cache learns from the answer: http/lobby_cache.hpp).
  std::function<void()> then;
};

using api_respond = std::function<void(api_reply)>;

/// What every route's handler works with: the actors, the options, and
/// what the API rendered once. Built by api's constructor.
struct api_context {
  backend be;
  server_options opts;
  std::shared_ptr<const http_metrics> metrics;
  std::chrono::steady_clock::time_point started;
  /// How long a join may take: every provider it may fail over to, at
  /// dispatch_timeout each, plus the durable write (SPEC §7).
  caf::timespan join_timeout;
  std::shared_ptr<const std::string> openapi; // rendered once, for base_path
  std::shared_ptr<const std::string> docs;
  /// The lobby WebSocket's voice settings (SPEC §9).
  std::shared_ptr<const voice_options> voice;
};

/// One matched request, handed to its route's handler (http/routes.hpp).
struct route_call {
  const api_context& ctx;
  const api_request& req;
  std::vector<std::string>& params; // the pattern's {...}, decoded
  api_respond& respond;             // call exactly once
};

class api {
public:
  /// `metrics` are the front end's request counters, reported by /metrics.
  api(backend be, server_options opts,
      std::shared_ptr<const http_metrics> metrics);

  /// Handles one request; `respond` is called exactly once. Returns the
  /// matched route's index in route_table(), or -1 when none matched (the
  /// `route` label of the request metrics).
  int handle(const api_request& req, api_respond respond) const;

  /// Finds the actor of a lobby for its live events (GET /ws/lobby/{id}):
  /// `found` is called once, inline or from a CAF thread: with the lobby's
  /// actor, or with an invalid handle and the error reply (422 for a bad id,
  /// 404 for an unknown lobby).
  void find_lobby(const std::string& lobby_id,
                  std::function<void(api_reply, lobby_actor)> found) const;

  std::shared_ptr<const voice_options> voice() const {
    return ctx_.voice;
  }

  caf::actor_system& system() const {
    return *ctx_.be.sys;
  }

  /// The reply for an error body with a status (404 routes, 413, ...).
  static api_reply error(unsigned status, std::string_view detail,
                         std::string_view code);

private:
  api_context ctx_;
};

} // namespace vb
