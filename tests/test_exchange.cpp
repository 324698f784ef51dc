// The front end's request path without a socket (http/exchange.hpp): raw
// request bytes through the parser limits, the header checks, the target,
// the router and the actors (in memory) to the response's bytes.
#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <string>

#include <zlib.h>

#include "http/api.hpp"
#include "http/exchange.hpp"
#include "http/metrics.hpp"
#include "model/config.hpp"
#include "tests/memory_backend.hpp"

namespace {

struct front_end {
  vb::test::memory_backend mem;
  vb::server_options opts;
  std::optional<vb::api> api;

  explicit front_end(std::string base_path = {}) {
    opts.base_path = std::move(base_path);
    api.emplace(mem.be, opts, std::make_shared<vb::http_metrics>());
  }

  /// The response to `bytes`, awaited (the test thread is no I/O thread).
  std::string send(const std::string& bytes) {
    auto answered = std::make_shared<std::promise<std::string>>();
    auto result = answered->get_future();
    vb::exchange(*api, opts, bytes,
                 [answered](std::string r) { answered->set_value(std::move(r)); });
    REQUIRE(result.wait_for(std::chrono::seconds(20))
            == std::future_status::ready);
    return result.get();
  }
};

std::string status_line(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

std::string body_of(const std::string& response) {
  auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string{} : response.substr(end + 4);
}

} // namespace

TEST_CASE("exchange: health, HEAD and the absolute form", "[exchange]") {
  front_end f;
  auto r = f.send("GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_line(r) == "HTTP/1.1 200 OK");
  CHECK(body_of(r).find(R"("status":"ok")") != std::string::npos);
  auto head = f.send("HEAD /api/health HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_line(head) == "HTTP/1.1 200 OK");
  CHECK(head.find("Content-Length: ") != std::string::npos);
  CHECK(body_of(head).empty());
  r = f.send("GET http://x/api/health HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_line(r) == "HTTP/1.1 200 OK");
}

TEST_CASE("exchange: a lobby created and read through the actors",
          "[exchange]") {
  front_end f;
  std::string body = R"({"name":"room"})";
  auto r = f.send("POST /api/lob%62y HTTP/1.1\r\nHost: x\r\nContent-Length: "
                  + std::to_string(body.size()) + "\r\n\r\n" + body);
  REQUIRE(status_line(r) == "HTTP/1.1 201 Created");
  auto b = body_of(r);
  auto at = b.find(R"("id":")");
  REQUIRE(at != std::string::npos);
  auto id = b.substr(at + 6, b.find('"', at + 6) - at - 6);
  r = f.send("GET /api/lobby/" + id + " HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_line(r) == "HTTP/1.1 200 OK");
  CHECK(body_of(r).find(R"("name":"room")") != std::string::npos);
  // A join with no provider for the bot: the registry's 404.
  std::string join = R"({"lobby_id":")" + id + R"("})";
  r = f.send("POST /api/bots/echo/join HTTP/1.1\r\nHost: x\r\nContent-Length: "
             + std::to_string(join.size()) + "\r\n\r\n" + join);
  CHECK(status_line(r) == "HTTP/1.1 404 Not Found");
}

TEST_CASE("exchange: what the router and validation refuse", "[exchange]") {
  front_end f;
  auto r = f.send("PUT /api/health HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_line(r) == "HTTP/1.1 405 Method Not Allowed");
  CHECK(r.find("Allow: GET") != std::string::npos);
  r = f.send("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_line(r) == "HTTP/1.1 404 Not Found");
  r = f.send("POST /api/lobby HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  CHECK(status_line(r) == "HTTP/1.1 422 Unprocessable Entity");
  CHECK(body_of(r).find("validation_error") != std::string::npos);
  r = f.send("GET /ws/lobby/abc HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_line(r) == "HTTP/1.1 426 Upgrade Required");
}

TEST_CASE("exchange: what the header checks refuse", "[exchange]") {
  front_end f;
  CHECK(status_line(f.send("GET /api/health HTTP/1.1\r\n\r\n"))
        == "HTTP/1.1 400 Bad Request");
  CHECK(status_line(f.send("POST /api/lobby HTTP/1.1\r\nHost: x\r\n"
                           "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}"))
        == "HTTP/1.1 400 Bad Request");
  CHECK(status_line(f.send("POST /api/lobby HTTP/1.1\r\nHost: x\r\n"
                           "Expect: magic\r\nContent-Length: 2\r\n\r\n{}"))
        == "HTTP/1.1 417 Expectation Failed");
  CHECK(status_line(f.send("GET /api/a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n"))
        == "HTTP/1.1 400 Bad Request");
  CHECK(status_line(f.send("POST /api/lobby HTTP/1.1\r\nHost: x\r\n"
                           "Content-Length: 999999\r\n\r\n"))
        == "HTTP/1.1 413 Payload Too Large");
  CHECK(status_line(f.send("GARBAGE\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
  // Cut short: a connection would wait, then close without an answer.
  CHECK(f.send("GET /api/health HTTP/1.1\r\nHost:").empty());
  CHECK(f.send("POST /api/lobby HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{")
          .empty());
  // A chunk size cut short (found by fuzzing: exchange() looped forever on
  // the byte the parser could not take yet).
  CHECK(f.send("POST /api/lobby HTTP/1.1\r\nHost: x\r\n"
               "Transfer-Encoding: chunked\r\n\r\n\n")
          .empty());
  CHECK(f.send("POST /api/lobby HTTP/1.1\r\nHost: x\r\n"
               "Transfer-Encoding: chunked\r\n\r\n1")
          .empty());
}

TEST_CASE("exchange: under a base path", "[exchange]") {
  front_end f{"/voice"};
  CHECK(status_line(f.send("GET /voice/api/health HTTP/1.1\r\nHost: x\r\n\r\n"))
        == "HTTP/1.1 200 OK");
  CHECK(status_line(f.send("GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n"))
        == "HTTP/1.1 404 Not Found");
  CHECK(status_line(f.send("GET /voiceover/api/health HTTP/1.1\r\nHost: x\r\n\r\n"))
        == "HTTP/1.1 404 Not Found");
}

TEST_CASE("exchange: the headers a browser is held to", "[exchange]") {
  front_end f;
  auto r = f.send("GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(r.find("X-Content-Type-Options: nosniff\r\n") != std::string::npos);
  r = f.send("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(r.find("X-Content-Type-Options: nosniff\r\n") != std::string::npos);
  // The page and /docs: their own origin only, never framed.
  for (auto target : {"/", "/docs"}) {
    r = f.send(std::string{"GET "} + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(status_line(r) == "HTTP/1.1 200 OK");
    CHECK(r.find("Content-Security-Policy: ") != std::string::npos);
    CHECK(r.find("frame-ancestors 'none'") != std::string::npos);
    CHECK(r.find("connect-src 'self'") != std::string::npos);
    CHECK(r.find("X-Frame-Options: DENY\r\n") != std::string::npos);
  }
}

namespace {

/// A header's value in a response ("" when absent).
std::string header_of(const std::string& response, const std::string& name) {
  auto head = response.substr(0, response.find("\r\n\r\n"));
  auto at = head.find("\r\n" + name + ": ");
  if (at == std::string::npos)
    return {};
  at += 4 + name.size();
  return head.substr(at, head.find("\r\n", at) - at);
}

std::string gunzip(const std::string& in) {
  z_stream zs{};
  REQUIRE(inflateInit2(&zs, 15 + 16) == Z_OK);
  std::string out(1 << 20, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  auto rc = inflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  inflateEnd(&zs);
  REQUIRE(rc == Z_STREAM_END);
  return out;
}

std::string post(const std::string& target, const std::string& body) {
  return "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: "
         + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string get(const std::string& target, const std::string& headers = {}) {
  return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n";
}

/// A registration with enough bots that the listing is worth compressing.
std::string registration(const std::string& name) {
  std::string bots;
  for (int i = 0; i < 20; ++i)
    bots += std::string(i ? "," : "") + R"({"name":"bot)" + std::to_string(i)
            + R"(","description":"a bot that says what it hears"})";
  return R"({"name":")" + name + R"(","base_url":"http://127.0.0.1:9/)" + name
         + R"(","bots":[)" + bots + "]}";
}

} // namespace

TEST_CASE("exchange: the polled listings have an ETag and answer 304 to it",
          "[exchange][etag]") {
  front_end f;
  for (auto target : {"/api/bots/providers", "/api/bots", "/api/lobby"}) {
    INFO(target);
    auto r = f.send(get(target));
    REQUIRE(status_line(r) == "HTTP/1.1 200 OK");
    auto etag = header_of(r, "ETag");
    REQUIRE(etag.size() > 2);
    CHECK(etag.front() == '"'); // strong
    CHECK(header_of(r, "Cache-Control") == "no-cache");
    CHECK(header_of(r, "Vary") == "Accept-Encoding");
    // Unchanged: 304, no body, the same ETag.
    auto again = f.send(get(target, "If-None-Match: " + etag + "\r\n"));
    CHECK(status_line(again) == "HTTP/1.1 304 Not Modified");
    CHECK(body_of(again).empty());
    CHECK(header_of(again, "Content-Length").empty());
    CHECK(header_of(again, "ETag") == etag);
    // A list of tags, a weak form of it and "*" match too; another does not.
    CHECK(status_line(f.send(get(target, "If-None-Match: \"x\", W/" + etag + "\r\n")))
          == "HTTP/1.1 304 Not Modified");
    CHECK(status_line(f.send(get(target, "If-None-Match: *\r\n")))
          == "HTTP/1.1 304 Not Modified");
    CHECK(status_line(f.send(get(target, "If-None-Match: \"p-0-1\"\r\n")))
          == "HTTP/1.1 200 OK");
    // HEAD: the same validator.
    CHECK(status_line(f.send("HEAD " + std::string{target} + " HTTP/1.1\r\nHost: x\r\n"
                             "If-None-Match: " + etag + "\r\n\r\n"))
          == "HTTP/1.1 304 Not Modified");
  }
}

TEST_CASE("exchange: a change gives the listings a new ETag", "[exchange][etag]") {
  front_end f;
  auto providers = header_of(f.send(get("/api/bots/providers")), "ETag");
  auto bots = header_of(f.send(get("/api/bots")), "ETag");
  auto lobbies = header_of(f.send(get("/api/lobby")), "ETag");
  REQUIRE(status_line(f.send(post("/api/bots/providers/register", registration("one"))))
          == "HTTP/1.1 200 OK");
  auto r = f.send(get("/api/bots/providers", "If-None-Match: " + providers + "\r\n"));
  CHECK(status_line(r) == "HTTP/1.1 200 OK");
  CHECK(header_of(r, "ETag") != providers);
  CHECK(body_of(r).find(R"("name":"one")") != std::string::npos);
  r = f.send(get("/api/bots", "If-None-Match: " + bots + "\r\n"));
  CHECK(status_line(r) == "HTTP/1.1 200 OK");
  // A heartbeat moves the provider's last_seen, not the bots: the bots
  // listing keeps its validator, the providers listing gets a new one.
  bots = header_of(r, "ETag");
  providers = header_of(f.send(get("/api/bots/providers")), "ETag");
  auto listed = body_of(f.send(get("/api/bots/providers")));
  auto pid_at = listed.find(R"("provider_id":")");
  REQUIRE(pid_at != std::string::npos);
  auto pid = listed.substr(pid_at + 15, listed.find('"', pid_at + 15) - pid_at - 15);
  REQUIRE(status_line(f.send(post("/api/bots/providers/" + pid + "/heartbeat", "{}")))
          == "HTTP/1.1 200 OK");
  CHECK(status_line(f.send(get("/api/bots", "If-None-Match: " + bots + "\r\n")))
        == "HTTP/1.1 304 Not Modified");
  CHECK(status_line(f.send(get("/api/bots/providers", "If-None-Match: " + providers + "\r\n")))
        == "HTTP/1.1 200 OK");
  // The lobby listing moves with lobbies, not with providers.
  CHECK(status_line(f.send(get("/api/lobby", "If-None-Match: " + lobbies + "\r\n")))
        == "HTTP/1.1 304 Not Modified");
  REQUIRE(status_line(f.send(post("/api/lobby", R"({"name":"room"})")))
          == "HTTP/1.1 201 Created");
  r = f.send(get("/api/lobby", "If-None-Match: " + lobbies + "\r\n"));
  CHECK(status_line(r) == "HTTP/1.1 200 OK");
  CHECK(body_of(r).find(R"("name":"room")") != std::string::npos);
  // A member joining changes the listing's member count: a new ETag.
  auto b = body_of(r);
  auto at = b.find(R"("id":")");
  REQUIRE(at != std::string::npos);
  auto id = b.substr(at + 6, b.find('"', at + 6) - at - 6);
  auto before = header_of(r, "ETag");
  REQUIRE(status_line(f.send(post("/api/lobby/" + id + "/sessions", R"({"nick":"ann"})")))
          == "HTTP/1.1 201 Created");
  r = f.send(get("/api/lobby", "If-None-Match: " + before + "\r\n"));
  CHECK(status_line(r) == "HTTP/1.1 200 OK");
  CHECK(body_of(r).find(R"("members":1)") != std::string::npos);
}

TEST_CASE("exchange: the listings are gzip-compressed for a client that asks",
          "[exchange][gzip]") {
  front_end f;
  REQUIRE(status_line(f.send(post("/api/bots/providers/register", registration("one"))))
          == "HTTP/1.1 200 OK");
  for (auto target : {"/api/bots/providers", "/api/bots"}) {
    INFO(target);
    auto plain = f.send(get(target));
    REQUIRE(status_line(plain) == "HTTP/1.1 200 OK");
    CHECK(header_of(plain, "Content-Encoding").empty());
    auto z = f.send(get(target, "Accept-Encoding: br;q=1.0, gzip;q=0.8\r\n"));
    REQUIRE(status_line(z) == "HTTP/1.1 200 OK");
    CHECK(header_of(z, "Content-Encoding") == "gzip");
    CHECK(header_of(z, "Content-Type") == "application/json");
    CHECK(std::stoul(header_of(z, "Content-Length")) == body_of(z).size());
    CHECK(body_of(z).size() < body_of(plain).size() / 3);
    CHECK(gunzip(body_of(z)) == body_of(plain));
    // Its own strong validator, and either one revalidates.
    auto etag = header_of(z, "ETag");
    CHECK(etag != header_of(plain, "ETag"));
    CHECK(status_line(f.send(get(target, "Accept-Encoding: gzip\r\nIf-None-Match: "
                                           + etag + "\r\n")))
          == "HTTP/1.1 304 Not Modified");
    CHECK(status_line(f.send(get(target, "Accept-Encoding: gzip\r\nIf-None-Match: "
                                           + header_of(plain, "ETag") + "\r\n")))
          == "HTTP/1.1 304 Not Modified");
    // Refused with q=0, or not named: sent as it is.
    CHECK(header_of(f.send(get(target, "Accept-Encoding: gzip;q=0, identity\r\n")),
                    "Content-Encoding")
            .empty());
    CHECK(header_of(f.send(get(target, "Accept-Encoding: deflate\r\n")),
                    "Content-Encoding")
            .empty());
  }
  // A small body (no lobbies) is not worth compressing.
  CHECK(header_of(f.send(get("/api/lobby", "Accept-Encoding: gzip\r\n")),
                  "Content-Encoding")
          .empty());
}
