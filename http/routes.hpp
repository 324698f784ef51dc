// The route table and the router: every route is a method, a pattern and
// the handler that answers it (grouped per resource in http/handlers.cpp);
// the router finds a request's route and its path parameters. Pure: no
// I/O, no Beast, no actors here, so the router is unit-tested and fuzzed on
// its own.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vb {

struct route_call; // http/api.hpp: the request, its parameters, the answer

/// Answers one matched request: calls `respond` of the call exactly once,
/// inline or later from an actor's thread.
using route_handler = void (*)(route_call&);

enum class route_kind {
  plain,
  websocket, // served only as a WebSocket upgrade (http/lobby_socket.cpp)
};

struct route_entry {
  const char* method;
  const char* pattern; // e.g. "/api/bots/{bot_name}/join"
  route_handler handler;
  route_kind kind = route_kind::plain;
};

/// What the router found for a request.
struct route_match {
  /// The matched route; null when none matched.
  const route_entry* route = nullptr;
  /// The matched route's position in its table; -1 when none matched.
  int index = -1;
  /// Path parameters in the order of the pattern's `{...}` segments,
  /// percent-decoded.
  std::vector<std::string> params;
  /// When no route matched: the methods of the routes that have this path,
  /// comma-separated (the Allow header of a 405); empty: the path is
  /// unknown (404).
  std::string allow;
};

/// A table with its patterns split once.
class router {
public:
  explicit router(std::vector<route_entry> table);

  /// Matches a request path (base path already removed, no query string).
  route_match match(std::string_view method, std::string_view path) const;

  const std::vector<route_entry>& table() const {
    return table_;
  }

private:
  std::vector<route_entry> table_;
  std::vector<std::vector<std::string_view>> patterns_;
};

/// Every route of the API (http/handlers.cpp). A route added there must be
/// described in http/openapi_spec.json as well (docs/operations.md); a
/// unit test checks that both name the same routes.
const std::vector<route_entry>& route_table();

/// The router of route_table().
const router& api_router();

/// Percent-decodes a path segment; false on a malformed escape.
/// `refused`: characters an escape may not stand for (the call fails).
bool percent_decode(std::string_view in, std::string& out,
                    std::string_view refused = {});

} // namespace vb
