// Idle keep-alive connections by endpoint, shared by the outbound clients
// (link/http_client.cpp for HTTP providers, etcd/unary.cpp), touched only
// on the pool's own strand (no lock). Beast is in this header: only link/
// and etcd/*.cpp include it.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "link/connection.hpp"

namespace vb::round_trip {

namespace net = boost::asio;

/// Idle keep-alive connections by "host:port", touched only on the pool's
/// own strand (no lock). A connection goes back after a complete response
/// that allows keep-alive; the next request to the same endpoint takes it.
/// One the provider closed meanwhile fails at once and the request is
/// retried on a new connection (link/round_trip.hpp's peer::kept). A connection
/// idle for `idle_timeout` is closed: an endpoint that gets no more
/// requests (a provider that died or left) keeps no socket open.
class connection_pool : public std::enable_shared_from_this<connection_pool> {
public:
  static constexpr std::size_t max_idle_per_endpoint = 64;
  static constexpr std::size_t max_endpoints = 1024;
  static constexpr auto idle_timeout = std::chrono::seconds(30);

  explicit connection_pool(net::io_context& ioc)
    : strand_(net::make_strand(ioc)), timer_(strand_) {
  }

  /// Calls `then(connection)` on `ex` with an idle connection, or null.
  template <class Executor, class Handler>
  void take(std::string key, Executor ex, Handler then) {
    net::post(strand_, [self = shared_from_this(), key = std::move(key), ex,
                        then = std::move(then)]() mutable {
      std::shared_ptr<connection> found;
      if (auto i = self->idle_.find(key); i != self->idle_.end()) {
        // Newest first; one the server closed or wrote to meanwhile goes.
        while (!found && !i->second.empty()) {
          auto c = std::move(i->second.back().conn);
          i->second.pop_back();
          if (c->quiet())
            found = std::move(c);
          else
            c->close();
        }
        if (i->second.empty())
          self->idle_.erase(i);
      }
      net::post(ex, [then = std::move(then), found = std::move(found)]() mutable {
        then(std::move(found));
      });
    });
  }

  /// Keeps a connection for the next request to `key` (or closes it when
  /// the pool is full).
  void give(std::string key, std::shared_ptr<connection> conn) {
    net::post(strand_, [self = shared_from_this(), key = std::move(key),
                        conn = std::move(conn)]() mutable {
      auto i = self->idle_.find(key);
      if (i == self->idle_.end() && self->idle_.size() >= max_endpoints)
        return conn->close();
      auto& list = self->idle_[key];
      if (list.size() < max_idle_per_endpoint)
        list.push_back(idle{std::move(conn), clock::now()});
      else
        conn->close();
      self->arm();
    });
  }

private:
  using clock = std::chrono::steady_clock;
  struct idle {
    std::shared_ptr<connection> conn;
    clock::time_point since;
  };

  /// On the strand: a sweep in a while, unless one is due already.
  void arm() {
    if (armed_)
      return;
    armed_ = true;
    timer_.expires_after(idle_timeout);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      self->armed_ = false;
      if (ec)
        return; // the client stops
      self->sweep();
    });
  }

  /// On the strand: closes the connections idle for idle_timeout.
  void sweep() {
    auto cutoff = clock::now() - idle_timeout;
    for (auto i = idle_.begin(); i != idle_.end();) {
      auto& list = i->second;
      // Oldest first: they went back in order.
      auto fresh = std::find_if(list.begin(), list.end(),
                                [&](const idle& x) { return x.since > cutoff; });
      for (auto j = list.begin(); j != fresh; ++j)
        j->conn->close();
      list.erase(list.begin(), fresh);
      i = list.empty() ? idle_.erase(i) : std::next(i);
    }
    if (!idle_.empty())
      arm();
  }

  net::strand<net::io_context::executor_type> strand_;
  net::steady_timer timer_;
  bool armed_ = false;
  std::unordered_map<std::string, std::vector<idle>> idle_;
};

} // namespace vb::round_trip
