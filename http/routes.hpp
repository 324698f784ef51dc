// The router: from method and path to a route and its path parameters.
// Pure: no I/O, no actors; the session turns a match into a command.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vb {

enum class route_id {
  health,
  openapi,            // GET /api/openapi.json
  docs,               // GET /docs: the page that renders the document
  metrics,            // GET /metrics: Prometheus text format
  lobby_list,
  lobby_create,
  lobby_get,
  session_create,
  session_delete,
  provider_register,
  provider_list,
  provider_get,
  provider_heartbeat,
  provider_delete,
  provider_drain, // POST /api/bots/providers/{provider_id}/drain (SPEC §7)
  bot_list,
  bot_join,
  bot_leave,
  lobby_events,       // the WebSocket of live lobby events
  not_found,          // no route has this path
  method_not_allowed, // a route has this path, with other methods
};

struct route_match {
  route_id id = route_id::not_found;
  /// The matched entry's position in route_table(); -1 when none matched.
  int index = -1;
  /// Path parameters in the order of the pattern's `{...}` segments,
  /// percent-decoded.
  std::vector<std::string> params;
  /// For 405: the methods the path accepts, comma-separated.
  std::string allow;
};

struct route_entry {
  const char* method;
  const char* pattern; // e.g. "/api/bots/{bot_name}/join"
  route_id id;
};

/// Every route of the API. A route added here must be described in
/// http/openapi_spec.json as well (docs/operations.md); a unit test checks
/// that both name the same routes.
const std::vector<route_entry>& route_table();

/// Matches a request path (base path already removed, no query string).
route_match match_route(std::string_view method, std::string_view path);

/// Percent-decodes a path segment; false on a malformed escape.
/// `refused`: characters an escape may not stand for (the call fails).
bool percent_decode(std::string_view in, std::string& out,
                    std::string_view refused = {});

} // namespace vb
