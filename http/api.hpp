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
#include "model/client_quotas.hpp"
#include "model/config.hpp"

namespace caf {
class actor_system;
}

namespace vb {

struct server_stats;
struct voice_options;
class http_metrics;
class access_verifier;

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
  /// The Authorization header (a frontend's access token, docs/security.md).
  std::string_view authorization;
  /// The client: the peer's address, or the one a trusted proxy forwarded
  /// for (what the per-client quotas count without access tokens).
  std::string_view client;
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

/// Takes one of a client's quota (docs/security.md, "Quotas") and calls the
/// verdict with nullopt (admitted) or the seconds to wait, once, on any
/// thread. The server keeps the buckets on a strand of their own
/// (http/quota_keeper.hpp); none: no quotas.
using quota_verdict = std::function<void(std::optional<double>)>;
using quota_hook = std::function<void(quota, std::string, quota_verdict)>;

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
  /// Frontend access tokens (--access-secret-file); null: off.
  std::shared_ptr<const access_verifier> access;
  /// The per-client quotas; empty: none.
  quota_hook quotas;
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
  /// `metrics` are the front end's request counters, reported by /metrics;
  /// `quotas` takes the per-client quotas (none: no quotas).
  api(backend be, server_options opts,
      std::shared_ptr<const http_metrics> metrics, quota_hook quotas = {});

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

  /// The frontend access tokens' verifier; null when access control is off.
  std::shared_ptr<const access_verifier> access() const {
    return ctx_.access;
  }

  /// Whether reading a lobby (its WebSocket too) needs an access token.
  bool reads_need_access() const {
    return ctx_.access && ctx_.opts.access_required_for_reads;
  }

  /// The front end's counters (access refusals, quotas).
  const http_metrics& metrics() const {
    return *ctx_.metrics;
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
