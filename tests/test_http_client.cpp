// The HTTP provider client against a tiny real server on 127.0.0.1 (plain
// POSIX sockets on a std::thread). Each test waits for the callback through a
// std::promise with a generous limit; nothing sleeps to wait for a condition.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "link/answer.hpp"
#include "link/http_client.hpp"
#include "model/url.hpp"
#include "loopback.hpp"

using namespace std::chrono_literals;
using vb::http_client;
using vb::http_result;

namespace {

constexpr auto wait_limit = 10s; // generous: only a broken client takes this long

// -- a tiny HTTP server -----------------------------------------------------------

enum class mode {
  json_ok,             // 200 with a JSON body and Content-Length
  error_500,           // 500 with a JSON body
  bad_status,          // a status line with status 099, then 103, then 200
  chunked,             // 200, Transfer-Encoding: chunked
  big,                 // 200 with Content-Length: 2 MiB
  big_chunked,         // 200, chunked, 2 MiB in all
  exact_limit,         // 200 with exactly 1 MiB
  hang,                // reads the request, never answers, keeps the socket
  close_at_once,       // closes right after accept, reads nothing
  close_after_request, // reads the request, closes without answering
  keep_alive,          // answers every request of a connection, keeps it
  answer_then_close,   // answers one request as if keeping the connection,
                       // then closes it (an idle connection the peer closed)
};

const std::string json_body = R"({"status":"started","run_id":"r-1"})";

using vb::test::send_all;

/// Reads one request (headers and a Content-Length body). "" on failure.
std::string read_request(int fd) {
  std::string data;
  char buf[4096];
  std::size_t header_end = std::string::npos;
  std::size_t need = 0;
  for (;;) {
    if (header_end == std::string::npos) {
      header_end = data.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        header_end += 4;
        std::size_t length = 0;
        std::string head = data.substr(0, header_end);
        for (auto& c : head)
          if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
        auto pos = head.find("\r\ncontent-length:");
        if (pos != std::string::npos)
          length = std::stoul(head.substr(pos + 17));
        need = header_end + length;
      }
    }
    if (header_end != std::string::npos && data.size() >= need)
      return data;
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return {};
    data.append(buf, static_cast<std::size_t>(n));
  }
}

class test_server {
public:
  explicit test_server(mode m) : mode_(m) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    port_ = vb::test::bind_loopback(listen_fd_);
    REQUIRE(::listen(listen_fd_, 128) == 0);
    first_request_ = first_request_promise_.get_future();
    thread_ = std::thread([this] { run(); });
  }

  ~test_server() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR); // wakes accept() on Linux
    thread_.join();
    ::close(listen_fd_);
    for (int fd : held_)
      ::close(fd);
  }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  uint16_t port() const {
    return port_;
  }

  /// The raw text of the first request this server read.
  std::future<std::string>& first_request() {
    return first_request_;
  }

  int requests() const {
    return requests_.load();
  }

  int connections() const {
    return connections_.load();
  }

private:
  void run() {
    for (;;) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) {
        if (errno == EINTR && !stopping_)
          continue;
        return;
      }
      if (stopping_) {
        ::close(fd);
        return;
      }
      handle(fd);
    }
  }

  void handle(int fd) {
    ++connections_;
    if (mode_ == mode::keep_alive || mode_ == mode::answer_then_close) {
      for (;;) {
        auto request = read_request(fd);
        if (request.empty())
          break;
        ++requests_;
        if (!send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json"
                          "\r\nContent-Length: "
                            + std::to_string(json_body.size()) + "\r\n\r\n"
                            + json_body)
            || mode_ == mode::answer_then_close)
          break;
      }
      ::close(fd);
      return;
    }
    if (mode_ == mode::close_at_once) {
      ::close(fd);
      return;
    }
    auto request = read_request(fd);
    if (request.empty()) {
      ::close(fd);
      return;
    }
    ++requests_;
    if (!recorded_) {
      recorded_ = true;
      first_request_promise_.set_value(request);
    }
    switch (mode_) {
      case mode::json_ok:
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: "
                       + std::to_string(json_body.size())
                       + "\r\nConnection: close\r\n\r\n" + json_body);
        break;
      case mode::error_500: {
        std::string body = R"({"detail":"boom"})";
        send_all(fd, "HTTP/1.1 500 Internal Server Error\r\n"
                     "Content-Type: application/json\r\nContent-Length: "
                       + std::to_string(body.size()) + "\r\n\r\n" + body);
        break;
      }
      case mode::bad_status:
        // Beast's parser takes any three digits; 099 and an unasked-for 1xx
        // are not answers the dispatcher can act on.
        send_all(fd, "HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\n{}");
        break;
      case mode::chunked:
        send_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        send_all(fd, "5\r\nhello\r\n");
        send_all(fd, "1\r\n,\r\n");
        send_all(fd, "6\r\n world\r\n0\r\n\r\n");
        break;
      case mode::big:
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2097152\r\n\r\n")
          && send_all(fd, std::string(2 * 1024 * 1024, 'x'));
        break;
      case mode::big_chunked: {
        if (!send_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
          break;
        std::string chunk = "10000\r\n" + std::string(0x10000, 'y') + "\r\n";
        bool ok = true;
        for (int i = 0; i < 32 && ok; ++i) // 32 * 64 KiB = 2 MiB
          ok = send_all(fd, chunk);
        if (ok)
          send_all(fd, "0\r\n\r\n");
        break;
      }
      case mode::exact_limit:
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: "
                       + std::to_string(http_client::max_body_bytes) + "\r\n\r\n"
                       + std::string(http_client::max_body_bytes, 'z'));
        break;
      case mode::hang:
        held_.push_back(fd); // closed when the server ends
        return;
      case mode::close_at_once:
      case mode::close_after_request:
        break;
    }
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
  }

  mode mode_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  bool recorded_ = false; // server thread only
  std::promise<std::string> first_request_promise_;
  std::future<std::string> first_request_;
  std::vector<int> held_; // server thread only until join
  std::thread thread_;
};

// -- waiting for a callback -------------------------------------------------------

/// Collects one request's callback: the result, the thread it ran on, and how
/// many times it was called (must end at exactly 1).
struct probe {
  struct outcome {
    http_result result;
    std::thread::id thread;
  };

  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::promise<outcome>> promise =
    std::make_shared<std::promise<outcome>>();
  std::future<outcome> future = promise->get_future();
  std::thread::id thread;

  http_client::callback callback() {
    return [calls = calls, promise = promise](http_result r) {
      if (calls->fetch_add(1) == 0)
        promise->set_value(outcome{std::move(r), std::this_thread::get_id()});
    };
  }

  http_result wait() {
    REQUIRE(future.wait_for(wait_limit) == std::future_status::ready);
    auto o = future.get();
    thread = o.thread;
    return std::move(o.result);
  }
};

struct call_result {
  http_result result;
  std::thread::id thread;
  int calls = 0;
};

call_result run_one(const std::string& method, const std::string& url,
                    const std::string& body = {},
                    std::chrono::milliseconds timeout = 5000ms,
                    unsigned threads = 1) {
  probe p;
  call_result out;
  {
    http_client client{threads};
    client.request(method, url, body, timeout, p.callback());
    out.result = p.wait();
    out.thread = p.thread;
  } // the client joins its threads: no late second call can hide
  out.calls = *p.calls;
  return out;
}

/// One request to a fresh server in mode `m`: called back exactly once.
call_result run_against(mode m, const std::string& method,
                        const std::string& path, const std::string& body = {},
                        std::chrono::milliseconds timeout = 5000ms) {
  test_server server{m};
  auto r = run_one(method, server.url(path), body, timeout);
  CHECK(r.calls == 1);
  return r;
}

} // namespace

// -- responses -------------------------------------------------------------------

TEST_CASE("http client: POST with a JSON body gets the JSON answer",
          "[http_client]") {
  test_server server{mode::json_ok};
  std::string body = R"({"lobby_id":"l1","session_id":"s1","nick":"bot"})";
  auto r = run_one("POST", server.url("/bots/echo/join"), body);
  CHECK(r.calls == 1);
  CHECK(r.thread != std::this_thread::get_id());
  CHECK(r.result.error == "");
  CHECK(r.result.status == 200);
  CHECK(r.result.ok());
  CHECK_FALSE(r.result.timed_out);
  CHECK(r.result.body == json_body);

  auto& fut = server.first_request();
  REQUIRE(fut.wait_for(wait_limit) == std::future_status::ready);
  auto req = fut.get();
  CHECK(req.rfind("POST /bots/echo/join HTTP/1.1\r\n", 0) == 0);
  CHECK(req.find("\r\nHost: 127.0.0.1:" + std::to_string(server.port())
                 + "\r\n")
        != std::string::npos);
  CHECK(req.find("\r\nUser-Agent: voicebot-server\r\n") != std::string::npos);
  CHECK(req.find("\r\nContent-Type: application/json\r\n")
        != std::string::npos);
  CHECK(req.find("\r\nContent-Length: " + std::to_string(body.size())
                 + "\r\n")
        != std::string::npos);
  // HTTP/1.1 keeps the connection by default.
  CHECK(req.find("\r\nConnection: close\r\n") == std::string::npos);
  CHECK(req.size() > body.size());
  CHECK(req.substr(req.size() - body.size()) == body);
}

TEST_CASE("http client: GET under a base path sends no body and no "
          "Content-Type",
          "[http_client]") {
  test_server server{mode::json_ok};
  auto base = server.url("/provider/v1/");
  auto r = run_one("GET", vb::join_url(base, "/bots"));
  CHECK(r.calls == 1);
  CHECK(r.result.ok());
  CHECK(r.result.body == json_body);

  auto& fut = server.first_request();
  REQUIRE(fut.wait_for(wait_limit) == std::future_status::ready);
  auto req = fut.get();
  CHECK(req.rfind("GET /provider/v1/bots HTTP/1.1\r\n", 0) == 0);
  CHECK(req.find("Content-Type") == std::string::npos);
  CHECK(req.find("Content-Length") == std::string::npos);
  CHECK(req.substr(req.size() - 4) == "\r\n\r\n");
}

TEST_CASE("http client: POST without a body sends Content-Length 0",
          "[http_client]") {
  test_server server{mode::json_ok};
  auto r = run_one("POST", server.url("/bots/runs/r-1/stop"));
  CHECK(r.result.ok());
  auto& fut = server.first_request();
  REQUIRE(fut.wait_for(wait_limit) == std::future_status::ready);
  auto req = fut.get();
  CHECK(req.rfind("POST /bots/runs/r-1/stop HTTP/1.1\r\n", 0) == 0);
  CHECK(req.find("\r\nContent-Length: 0\r\n") != std::string::npos);
  CHECK(req.find("Content-Type") == std::string::npos);
}

TEST_CASE("http client: HEAD reads headers only; a huge timeout is clamped",
          "[http_client]") {
  SECTION("HEAD") {
    auto r = run_against(mode::json_ok, "HEAD", "/bots");
    CHECK(r.result.ok());
    CHECK(r.result.body.empty());
  }
  SECTION("milliseconds::max()") {
    auto r = run_against(mode::json_ok, "GET", "/bots", {},
                         std::chrono::milliseconds::max());
    CHECK(r.result.ok());
  }
}

TEST_CASE("http client: a 500 is a response, not an error", "[http_client]") {
  auto r = run_against(mode::error_500, "POST", "/bots/echo/join", "{}");
  CHECK(r.result.error == "");
  CHECK(r.result.status == 500);
  CHECK_FALSE(r.result.ok());
  CHECK(r.result.body == R"({"detail":"boom"})");
}

TEST_CASE("http client: a status outside 200-599 is no answer",
          "[http_client]") {
  auto r = run_against(mode::bad_status, "POST", "/bots/echo/join", "{}");
  CHECK(r.result.error == "bad status 99");
  CHECK(r.result.status == 0);
  CHECK_FALSE(r.result.answered());
  for (auto [answer, why] :
       {std::pair{"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\n"
                  "Content-Length: 0\r\n\r\n", "bad status 103"},
        std::pair{"HTTP/1.1 600 Beyond\r\nContent-Length: 0\r\n\r\n",
                  "bad status 600"},
        std::pair{"HTTP/1.1 599 Edge\r\nContent-Length: 0\r\n\r\n", ""}}) {
    CAPTURE(answer);
    auto a = vb::answer::read_answer(answer, false, 1);
    CHECK(a.error == why);
  }
}

TEST_CASE("http client: a chunked response is put together", "[http_client]") {
  auto r = run_against(mode::chunked, "GET", "/bots");
  CHECK(r.result.ok());
  CHECK(r.result.body == "hello, world");
}

TEST_CASE("http client: a body over 1 MiB is refused", "[http_client]") {
  SECTION("with Content-Length") {
    auto r = run_against(mode::big, "GET", "/bots");
    CHECK(r.result.error == "response too large");
    CHECK(r.result.status == 0);
    CHECK(r.result.body.empty());
    CHECK_FALSE(r.result.ok());
    CHECK_FALSE(r.result.timed_out);
  }
  SECTION("chunked") {
    auto r = run_against(mode::big_chunked, "GET", "/bots");
    CHECK(r.result.error == "response too large");
    CHECK(r.result.status == 0);
    CHECK_FALSE(r.result.ok());
  }
  SECTION("exactly 1 MiB is fine") {
    auto r = run_against(mode::exact_limit, "GET", "/bots");
    CHECK(r.result.ok());
    CHECK(r.result.body.size() == http_client::max_body_bytes);
  }
}

// -- failures ------------------------------------------------------------------------

TEST_CASE("http client: a server that never answers times out",
          "[http_client]") {
  test_server server{mode::hang};
  auto start = std::chrono::steady_clock::now();
  auto r = run_one("POST", server.url("/bots/echo/join"), "{}", 300ms);
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(r.calls == 1);
  CHECK(r.result.error == "timeout");
  CHECK(r.result.timed_out);
  CHECK(r.result.status == 0);
  CHECK_FALSE(r.result.ok());
  CHECK(elapsed >= 250ms);
  CHECK(elapsed < 5s);
  CHECK(server.requests() == 1); // the request did reach it
}

TEST_CASE("http client: a zero timeout times out at once", "[http_client]") {
  auto r = run_against(mode::hang, "GET", "/bots", {}, 0ms);
  CHECK(r.result.error == "timeout");
  CHECK(r.result.timed_out);
}

TEST_CASE("http client: a server that closes is an error", "[http_client]") {
  SECTION("right after accepting") {
    auto r =
      run_against(mode::close_at_once, "POST", "/bots/echo/join", "{}");
    CAPTURE(r.result.error); // "Connection reset by peer" on Linux
    CHECK_FALSE(r.result.error.empty());
    CHECK(r.result.status == 0);
    CHECK_FALSE(r.result.timed_out);
    CHECK_FALSE(r.result.ok());
  }
  SECTION("after reading the request") {
    auto r = run_against(mode::close_after_request, "POST",
                         "/bots/echo/join", "{}");
    CHECK(r.result.error == "connection closed");
    CHECK(r.result.status == 0);
    CHECK_FALSE(r.result.timed_out);
  }
}

TEST_CASE("http client: connection refused", "[http_client]") {
  auto port = vb::test::refusing_port();
  auto r = run_one("GET", "http://127.0.0.1:" + std::to_string(port) + "/bots");
  CHECK(r.calls == 1);
  CHECK(r.result.error == "connection refused");
  CHECK(r.result.status == 0);
  CHECK_FALSE(r.result.timed_out);
}

TEST_CASE("http client: an unknown host", "[http_client]") {
  // The .invalid TLD never resolves (RFC 6761). Where the resolver is slow
  // to say so, the deadline answers first.
  auto r = run_one("GET", "http://no-such-host.invalid/bots", {}, 2000ms);
  CAPTURE(r.result.error);
  CHECK(r.calls == 1);
  CHECK(r.result.status == 0);
  CHECK((r.result.error == "host not found" || r.result.timed_out));
}

TEST_CASE("http client: errors known at once are posted, not called inline",
          "[http_client]") {
  SECTION("bad url") {
    auto r = run_one("GET", "http://bad host/bots");
    CHECK(r.calls == 1);
    CHECK(r.thread != std::this_thread::get_id());
    CHECK(r.result.error == "bad url: http://bad host/bots");
    CHECK(r.result.status == 0);
    CHECK_FALSE(r.result.ok());
  }
  SECTION("user info, which validation refuses at registration too") {
    auto r = run_one("POST", "http://user:pw@127.0.0.1:9000/bots/x/join", "{}");
    CHECK(r.calls == 1);
    CHECK(r.result.error == "bad url: http://user:pw@127.0.0.1:9000/bots/x/join");
    CHECK(r.result.status == 0);
  }
  SECTION("not a URL at all") {
    auto r = run_one("GET", "");
    CHECK(r.calls == 1);
    CHECK(r.result.error.rfind("bad url: ", 0) == 0);
  }
  SECTION("a long URL with control characters is quoted cut and cleaned") {
    std::string url = "http://h/\r\n" + std::string(300, 'a');
    auto r = run_one("GET", url);
    CHECK(r.calls == 1);
    CHECK(r.result.error
          == "bad url: http://h/??" + std::string(189, 'a') + "...");
  }
  SECTION("https") {
    auto r = run_one("POST", "https://provider.example:8443/bots/x/join", "{}");
    CHECK(r.calls == 1);
    CHECK(r.thread != std::this_thread::get_id());
    CHECK(r.result.error == "https providers are not supported");
    CHECK(r.result.status == 0);
  }
  SECTION("unknown method") {
    auto r = run_one("FROB", "http://127.0.0.1:1/bots");
    CHECK(r.calls == 1);
    CHECK(r.result.error == "bad method: FROB");
  }
}

// -- concurrency and shutdown -----------------------------------------------------

TEST_CASE("http client: many requests at once on two threads",
          "[http_client]") {
  test_server server{mode::json_ok};
  constexpr int n = 40;
  std::vector<probe> probes(n);
  {
    http_client client{2};
    for (auto& p : probes)
      client.request("GET", server.url("/bots"), {}, 5000ms, p.callback());
    for (auto& p : probes) {
      auto r = p.wait();
      CHECK(r.ok());
      CHECK(r.body == json_body);
      CHECK(p.thread != std::this_thread::get_id());
    }
  }
  for (auto& p : probes)
    CHECK(*p.calls == 1);
  CHECK(server.requests() == n);
}

TEST_CASE("http client: destroyed with requests in flight", "[http_client]") {
  SECTION("one waiting for its response") {
    test_server server{mode::hang};
    probe p;
    {
      http_client client;
      client.request("POST", server.url("/bots/echo/join"), "{}", 30000ms,
                     p.callback());
      // The server has the request: the client is now reading.
      auto& fut = server.first_request();
      REQUIRE(fut.wait_for(wait_limit) == std::future_status::ready);
    }
    CHECK(*p.calls == 1);
    REQUIRE(p.future.wait_for(0s) == std::future_status::ready);
    auto r = p.future.get();
    CHECK(r.result.error == "client stopped");
    CHECK(r.result.status == 0);
    CHECK_FALSE(r.result.timed_out);
  }
  SECTION("many, in every phase, plus posted errors") {
    test_server server{mode::hang};
    std::vector<probe> probes(30);
    {
      http_client client{2};
      for (std::size_t i = 0; i < probes.size(); ++i) {
        auto url = i % 10 == 9 ? std::string{"https://x/"}
                               : server.url("/bots");
        client.request("GET", url, {}, 30000ms, probes[i].callback());
      }
    } // destroyed at once: some never started, some connect, some read
    for (auto& p : probes) {
      CHECK(*p.calls == 1);
      REQUIRE(p.future.wait_for(0s) == std::future_status::ready);
      auto r = p.future.get();
      CHECK_FALSE(r.result.error.empty());
      CHECK_FALSE(r.result.ok());
    }
  }
}

TEST_CASE("http client: a throwing callback does not kill the client",
          "[http_client]") {
  test_server server{mode::json_ok};
  probe p;
  http_client client;
  client.request("GET", server.url("/bots"), {}, 5000ms,
                 [](http_result) { throw std::runtime_error("oops"); });
  client.request("GET", server.url("/bots"), {}, 5000ms, p.callback());
  CHECK(p.wait().ok());
}

// -- keep-alive -------------------------------------------------------------------

namespace {

/// Sends `n` joins one after the other on one client to a server in mode
/// `m`: each one answered 200 with the JSON body, none sent twice, over
/// `connections` connections in all.
void joins_in_turn(mode m, int n, int connections) {
  test_server server{m};
  http_client client{1};
  for (int i = 0; i < n; ++i) {
    probe p;
    client.request("POST", server.url("/bots/echo/join"), "{}", 5000ms,
                   p.callback());
    auto r = p.wait();
    CAPTURE(i, r.error);
    CHECK(r.status == 200);
    CHECK(r.body == json_body);
  }
  CHECK(server.requests() == n);
  CHECK(server.connections() == connections);
}

} // namespace

TEST_CASE("http client: requests to one endpoint share a kept-alive "
          "connection",
          "[http_client]") {
  joins_in_turn(mode::keep_alive, 5, 1);
}

TEST_CASE("http client: a kept connection the provider closed is replaced "
          "once",
          "[http_client]") {
  // Each request after the first found a closed connection and made a new
  // one; none failed and none was sent twice.
  joins_in_turn(mode::answer_then_close, 3, 3);
}
