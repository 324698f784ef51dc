// The router on its own: a table of routes with handlers, matched without
// a server, Beast or actors.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "http/routes.hpp"

namespace {

void a(vb::route_call&) {}
void b(vb::route_call&) {}
void c(vb::route_call&) {}

vb::router test_router() {
  return vb::router{{
    {"GET", "/api/items", a},
    {"POST", "/api/items", b},
    {"GET", "/api/items/{id}", c},
    {"POST", "/api/items/special", a},
    {"DELETE", "/api/items/{id}/parts/{part}", b},
    {"GET", "/ws/items/{id}", c, vb::route_kind::websocket},
  }};
}

/// The match of `method` and `path`: a route, with `handler`.
template <class Handler>
vb::route_match found(const vb::router& r, const char* method,
                      const char* path, Handler handler) {
  auto m = r.match(method, path);
  REQUIRE(m.route);
  CHECK(m.route->handler == handler);
  return m;
}

} // namespace

TEST_CASE("router: a path and method find the route and its handler",
          "[router]") {
  auto r = test_router();
  auto m = found(r, "GET", "/api/items", a);
  CHECK(m.index == 0);
  CHECK(m.params.empty());
  CHECK(found(r, "POST", "/api/items", b).index == 1);
}

TEST_CASE("router: parameters are decoded, in the pattern's order",
          "[router]") {
  auto r = test_router();
  auto m = found(r, "DELETE", "/api/items/x%20y/parts/p%2Fq", b);
  CHECK(m.params == std::vector<std::string>{"x y", "p/q"});
  // A malformed escape or an empty segment matches no parameter.
  CHECK_FALSE(r.match("GET", "/api/items/%zz").route);
  CHECK_FALSE(r.match("GET", "/api/items/%4").route);
  CHECK_FALSE(r.match("DELETE", "/api/items//parts/p").route);
}

TEST_CASE("router: a literal segment and a parameter of another method",
          "[router]") {
  auto r = test_router();
  // GET of the literal path of a POST route: the parameter route of GET.
  auto m = found(r, "GET", "/api/items/special", c);
  CHECK(m.params == std::vector<std::string>{"special"});
  found(r, "POST", "/api/items/special", a);
}

TEST_CASE("router: a known path with another method lists the methods",
          "[router]") {
  auto r = test_router();
  auto m = r.match("PUT", "/api/items");
  CHECK_FALSE(m.route);
  CHECK(m.index == -1);
  CHECK(m.allow == "GET, POST");
  m = r.match("PATCH", "/api/items/special");
  CHECK(m.allow == "GET, POST");
}

TEST_CASE("router: an unknown path is no route and no methods", "[router]") {
  auto r = test_router();
  for (auto path : {"", "/", "/api", "/api/items/", "/api/items/1/parts",
                    "/API/items", "api/items", "/api/items/1/parts/2/3"}) {
    auto m = r.match("GET", path);
    CHECK_FALSE(m.route);
    CHECK(m.allow.empty());
  }
}

TEST_CASE("router: the kind of a route", "[router]") {
  auto r = test_router();
  auto m = found(r, "GET", "/ws/items/7", c);
  CHECK(m.route->kind == vb::route_kind::websocket);
  CHECK(r.match("GET", "/api/items/7").route->kind == vb::route_kind::plain);
}

TEST_CASE("router: the API's table has one handler per method and pattern",
          "[router]") {
  std::set<std::string> seen;
  for (auto& e : vb::route_table()) {
    CHECK(e.handler != nullptr);
    CHECK(seen.insert(std::string{e.method} + " " + e.pattern).second);
    // Each route is found by its own pattern (parameters as themselves).
    auto m = vb::api_router().match(e.method, e.pattern);
    REQUIRE(m.route);
    CHECK(m.route->pattern == std::string{e.pattern});
  }
  // Only the lobby events are a WebSocket.
  auto m = vb::api_router().match("GET", "/ws/lobby/abc");
  REQUIRE(m.route);
  CHECK(m.route->kind == vb::route_kind::websocket);
}

TEST_CASE("percent_decode: escapes, refusals and malformed input",
          "[router]") {
  std::string out;
  CHECK(vb::percent_decode("lob%62y", out));
  CHECK(out == "lobby");
  CHECK(vb::percent_decode("%E2%82%AC", out));
  CHECK(out == "\xE2\x82\xAC");
  CHECK_FALSE(vb::percent_decode("%", out));
  CHECK_FALSE(vb::percent_decode("a%2", out));
  CHECK_FALSE(vb::percent_decode("%g0", out));
  CHECK_FALSE(vb::percent_decode("a%2Fb", out, "/"));
  CHECK(vb::percent_decode("a%2Fb", out));
  CHECK(out == "a/b");
  CHECK_FALSE(vb::percent_decode("%00", out, std::string_view{"\0", 1}));
}
