// What the etcd client's parts share (unary, watch, lease, codec); private.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>

#include "etcd/codec.hpp"
#include "link/connection_pool.hpp"
#include "etcd/etcd_client.hpp"
#include "model/call_once.hpp"

namespace vb::etcd {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct endpoint {
  std::string text; // as given
  std::string host_field;
  tcp::resolver::results_type addresses;
  round_trip::tls_target tls; // no context: plain http
};

/// Told once the client holds a token (or has no user), or why not.
using token_wait = std::function<void(const etcd_error&)>;

/// Logs a callback's exception: one caller's bug must not end the I/O thread.
void report_callback_threw(const char* what);

/// What a unary call's callback gets when the client stops first.
reply client_stopped_reply();

/// The caller's callback, called exactly once: if dropped unanswered (the
/// client stopped), with client_stopped.
struct once : call_once<reply> {
  explicit once(std::function<void(reply)> f)
    : call_once(std::move(f), client_stopped_reply, report_callback_threw) {
  }
};

/// Calls a watch or keeper callback, if any, keeping its exceptions in.
template <class F, class... A>
void guarded(const F& f, A&&... a) noexcept {
  if (!f)
    return;
  try {
    f(std::forward<A>(a)...);
  } catch (const std::exception& e) {
    report_callback_threw(e.what());
  } catch (...) {
    report_callback_threw(nullptr);
  }
}

class watch_state;
class keeper_state;

struct etcd_client::impl {
  net::io_context ioc;
  net::executor_work_guard<net::io_context::executor_type> work{
    ioc.get_executor()};
  std::thread thread;
  etcd_options options;
  std::vector<endpoint> endpoints;
  std::string config_error; // non-empty: every call fails with it
  // Below: only on the I/O thread.
  std::size_t current = 0; // the endpoint calls start at
  bool stopping = false;
  std::unordered_map<uint64_t, std::shared_ptr<watch_state>> watches;
  std::unordered_map<uint64_t, std::shared_ptr<keeper_state>> keepers;
  /// Kept-alive connections by endpoint text, for unary calls.
  std::shared_ptr<round_trip::connection_pool> pool
    = std::make_shared<round_trip::connection_pool>(ioc);
  /// etcd's auth token and the calls waiting for one (auth.cpp); shared
  /// with the authenticate call in flight, which may end as the client goes.
  struct token_state {
    std::string token; // empty: none yet, or no user
    bool asking = false;
    std::vector<token_wait> waits;
  };
  std::shared_ptr<token_state> auth = std::make_shared<token_state>();

  /// `then` once a token is held (at once when there is one, or no user),
  /// or with why none could be had; on the I/O thread.
  void with_token(token_wait then);
  /// etcd said `used` is invalid: the next call asks for a new one.
  void forget_token(const std::string& used);

  /// Starts a unary call of `path` with `body`; `done` on the I/O thread.
  /// `resend`: whether a request already sent may be sent again (to the
  /// next endpoint) when its answer does not come; false for writes that
  /// must not apply twice (a txn whose compares its own first attempt would
  /// fail): then the call ends with `unavailable` and the outcome is
  /// unknown to the caller.
  /// `anonymous`: sent without a token (authenticate itself).
  void call(std::string path, std::string body, clock_type::time_point deadline,
            once done, bool resend = true, bool anonymous = false);
};

using impl = etcd_client::impl;

} // namespace vb::etcd
