// A fake etcd JSON gateway on 127.0.0.1 for the etcd client's tests (plain
// POSIX sockets, one std::thread per connection): it records what the
// client sent and answers with the handler a test gives; and the tests'
// waits (futures, condition variables, always bounded).
#pragma once

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "etcd/etcd_client.hpp"
#include "etcd_member.hpp"
#include "loopback.hpp"

namespace {

using namespace std::chrono_literals;
using namespace vb::etcd;
using json = nlohmann::json;

constexpr auto wait_limit = 10s; // generous: only a broken client takes this long
using steady = std::chrono::steady_clock;

// -- a fake gateway -------------------------------------------------------------

struct http_request {
  std::string method, target, head, body; // head: lower-cased header lines
  steady::time_point at;
};

using vb::test::send_all;

/// Reads one request with a Content-Length body; false at end of stream.
inline bool read_request(int fd, std::string& carry, http_request& out) {
  char buf[4096];
  for (;;) {
    auto end = carry.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::string head = carry.substr(0, end + 4);
      for (auto& c : head)
        if (c >= 'A' && c <= 'Z')
          c = static_cast<char>(c - 'A' + 'a');
      std::size_t length = 0;
      auto pos = head.find("\r\ncontent-length:");
      if (pos != std::string::npos)
        length = std::stoul(head.substr(pos + 17));
      if (carry.size() >= end + 4 + length) {
        auto line_end = carry.find("\r\n");
        auto line = carry.substr(0, line_end);
        auto sp1 = line.find(' ');
        auto sp2 = line.find(' ', sp1 + 1);
        out.method = line.substr(0, sp1);
        out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
        out.head = head;
        out.body = carry.substr(end + 4, length);
        out.at = steady::now();
        carry.erase(0, end + 4 + length);
        return true;
      }
    }
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    carry.append(buf, static_cast<std::size_t>(n));
  }
}

inline std::string answer(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: "
         "application/json\r\nContent-Length: "
         + std::to_string(body.size()) + "\r\n\r\n" + body;
}

inline std::string chunked_head(int status) {
  return "HTTP/1.1 " + std::to_string(status)
         + " X\r\nContent-Type: application/json\r\nTransfer-Encoding: "
           "chunked\r\n\r\n";
}

inline std::string chunk(const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + data + "\r\n";
}

/// A whole chunked answer of one message (how etcd sends errors and
/// the keepalive result).
inline std::string chunked_answer(int status, const std::string& body) {
  return chunked_head(status) + chunk(body + "\n") + "0\r\n\r\n";
}

class fake_gateway {
public:
  /// Called per request on the connection's thread; writes the answer to fd.
  using handler = std::function<void(int fd, const http_request&, int nth)>;

  /// `keep_open`: connections carry request after request (as etcd's do);
  /// otherwise each is closed after its first answer.
  explicit fake_gateway(handler h, bool keep_open = false)
    : handler_(std::move(h)), keep_open_(keep_open) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listen_fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr)
            == 0);
    REQUIRE(::listen(listen_fd_, 64) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len)
            == 0);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  ~fake_gateway() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    accept_thread_.join();
    {
      std::lock_guard<std::mutex> g(mu_);
      for (int fd : fds_)
        ::shutdown(fd, SHUT_RDWR);
    }
    stop_cv_.notify_all();
    for (auto& t : conn_threads_)
      t.join();
    for (int fd : fds_)
      ::close(fd);
    ::close(listen_fd_);
  }

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_);
  }

  std::vector<http_request> requests() {
    std::lock_guard<std::mutex> g(mu_);
    return requests_;
  }

  /// Requests to `target` so far.
  std::vector<http_request> requests(const std::string& target) {
    std::vector<http_request> out;
    for (auto& r : requests())
      if (r.target == target)
        out.push_back(r);
    return out;
  }

  /// Waits until `n` requests to `target` arrived (bounded).
  bool wait_requests(const std::string& target, std::size_t n,
                     std::chrono::milliseconds limit = wait_limit) {
    std::unique_lock<std::mutex> g(mu_);
    return cv_.wait_for(g, limit, [&] {
      std::size_t k = 0;
      for (auto& r : requests_)
        k += r.target == target;
      return k >= n;
    });
  }

  /// Connections accepted so far.
  std::size_t connections() {
    std::lock_guard<std::mutex> g(mu_);
    return fds_.size();
  }

  /// Keeps a streaming answer open until the client closes its end or the
  /// gateway stops.
  static void hold(int fd) {
    char buf[256];
    while (::recv(fd, buf, sizeof buf, 0) > 0) {
    }
  }

private:
  void accept_loop() {
    while (!stopping_) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) {
        if (stopping_ || errno != EINTR)
          return;
        continue;
      }
      std::lock_guard<std::mutex> g(mu_);
      fds_.push_back(fd);
      conn_threads_.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    std::string carry;
    http_request r;
    while (!stopping_ && read_request(fd, carry, r)) {
      int nth;
      {
        std::lock_guard<std::mutex> g(mu_);
        requests_.push_back(r);
        nth = static_cast<int>(std::count_if(
          requests_.begin(), requests_.end(),
          [&](const http_request& x) { return x.target == r.target; }));
      }
      cv_.notify_all();
      handler_(fd, r, nth);
      if (!keep_open_) {
        // One request per connection: closed both ways, so that a client
        // reusing it fails at once and never has a request read here.
        ::shutdown(fd, SHUT_RDWR);
        return;
      }
    }
  }

  handler handler_;
  bool keep_open_ = false;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable stop_cv_;
  std::vector<int> fds_;
  std::vector<std::thread> conn_threads_;
  std::vector<http_request> requests_;
};

/// A loopback port nobody listens on (bound, then closed).
inline std::string refused_url() {
  return "http://127.0.0.1:" + std::to_string(vb::test::free_port());
}

/// Runs a unary call and waits for its result.
template <class R, class Start>
R await(Start start) {
  auto p = std::make_shared<std::promise<R>>();
  auto f = p->get_future();
  start([p](R r) { p->set_value(std::move(r)); });
  REQUIRE(f.wait_for(wait_limit) == std::future_status::ready);
  return f.get();
}

/// A real member's status once it serves (bounded; each probe is too).
inline status_result await_serving(etcd_client& c) {
  status_result st;
  auto until = steady::now() + 30s;
  do {
    st = await<status_result>([&](auto done) { c.status(1s, done); });
  } while (st.error && steady::now() < until);
  REQUIRE_FALSE(st.error);
  return st;
}

/// A watch of a prefix from a revision.
inline watch_request watch_from(std::string prefix, int64_t revision) {
  watch_request w;
  w.key = std::move(prefix);
  w.start_revision = revision;
  return w;
}

/// Collects watch updates and wakes a waiter. The updates live as long as
/// the client's callback: a client destroyed after the log may still call it.
class watch_log {
  struct state {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<watch_update> updates;
  };
  std::shared_ptr<state> s_ = std::make_shared<state>();

public:
  etcd_client::watch_callback callback() {
    return [s = s_](const watch_update& u) {
      {
        std::lock_guard<std::mutex> g(s->mu);
        s->updates.push_back(u);
      }
      s->cv.notify_all();
    };
  }

  /// Waits until `pred(updates)` holds (bounded).
  bool wait(std::function<bool(const std::vector<watch_update>&)> pred) {
    std::unique_lock<std::mutex> g(s_->mu);
    return s_->cv.wait_for(g, wait_limit, [&] { return pred(s_->updates); });
  }

  /// The latest update (there must be one).
  watch_update last() {
    std::lock_guard<std::mutex> g(s_->mu);
    REQUIRE_FALSE(s_->updates.empty());
    return s_->updates.back();
  }

  std::vector<watch_event> events() {
    std::lock_guard<std::mutex> g(s_->mu);
    std::vector<watch_event> out;
    for (auto& u : s_->updates)
      for (auto& e : u.events)
        out.push_back(e);
    return out;
  }

  std::size_t count(watch_update::kind k) {
    std::lock_guard<std::mutex> g(s_->mu);
    return static_cast<std::size_t>(std::count_if(
      s_->updates.begin(), s_->updates.end(),
      [&](const watch_update& u) { return u.what == k; }));
  }
};

const std::string H2 = R"("header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"})";

inline std::string header(int rev) {
  return R"("header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":")"
         + std::to_string(rev) + R"(","raft_term":"2"})";
}

inline etcd_options options_for(std::vector<std::string> endpoints) {
  etcd_options o;
  o.endpoints = std::move(endpoints);
  o.attempt_timeout = 1000ms;
  o.retry_pause = 20ms;
  o.watch_backoff = 20ms;
  o.watch_backoff_max = 100ms;
  return o;
}

inline range_request key_range(std::string key) {
  range_request r;
  r.key = std::move(key);
  return r;
}

inline json body_of(const http_request& r) {
  return json::parse(r.body);
}


} // namespace
