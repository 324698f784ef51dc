// One HTTP/1.1 round trip on Beast, the core under both outbound clients
// (link/http_client.cpp for HTTP providers, etcd/unary.cpp for its
// unary calls): connect (or reuse a kept-alive connection), send one
// request, read one answer within limits and a deadline, report the outcome
// exactly once. What is each client's own stays there: the provider link's
// pool and answer words (link/answer.hpp), the etcd client's endpoint
// rotation and JSON. Beast is in this header: only link/, fuzz/ and
// etcd/*.cpp include it; the clients' public headers stay plain.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/error_code.hpp>

#include "link/connection.hpp"

namespace vb::round_trip {

using tcp = boost::asio::ip::tcp;
using request = boost::beast::http::request<boost::beast::http::string_body>;
using response = boost::beast::http::response<boost::beast::http::string_body>;
using response_parser
  = boost::beast::http::response_parser<boost::beast::http::string_body>;

/// How an answer is read.
struct reading {
  /// Bodies larger than this fail the read (http::error::body_limit).
  std::size_t body_limit = 0;
  /// After the header: why the answer is refused (then its body is not
  /// read and the connection closes), or empty. None: every header is read on.
  std::string (*refuse)(const response_parser&) = nullptr;
};

/// A fresh parser's limits: `rules`' body limit, Beast's default 8 KiB of
/// headers, headers only after a HEAD.
void prepare(response_parser& p, const reading& rules, bool head_request);

/// Why `rules` refuse the header `p` has read, or empty.
std::string refusal(const reading& rules, const response_parser& p);

/// Whether a connection may carry another request after the whole answer
/// `p`, with `unread` bytes already received past it.
bool reusable(const response_parser& p, std::size_t unread);

/// The Host field: `host` (an IPv6 literal in brackets), then ":port"
/// unless `port` is `default_port`.
std::string host_field(std::string_view host, std::string_view port,
                       std::string_view default_port = {});

/// Where a round trip goes.
struct peer {
  /// A kept-alive connection to try first. If it fails before any answer
  /// (the server closed it while idle), a new connection replaces it, once
  /// (unless `retry_kept` is false and the request was already written).
  std::shared_ptr<connection> kept;
  bool retry_kept = true;
  /// TLS when `tls.context` is set (a kept connection is already secure).
  tls_target tls;
  /// The server's addresses; when empty, `host` and `port` are resolved.
  tcp::resolver::results_type addresses;
  std::string host;
  std::string port;
};

/// The step a round trip ended in.
enum class step : uint8_t { resolve, connect, handshake, write, read, done };

/// "resolve", "connect", "handshake", "write", "read", "done".
const char* to_string(step x);

/// How a round trip ended. Exactly one of: a whole answer (`at` is done);
/// a failed step (`at` and `error`); a refused header (`at` is read,
/// `refused` says why); dropped (never finished: its io_context shut down).
struct outcome {
  step at = step::resolve;
  boost::system::error_code error;
  std::string refused;
  bool dropped = false;
  /// The whole request was written, on this connection or one it replaced:
  /// the server may have acted on it.
  bool sent = false;
  response res; // when done
  /// When done and both sides allow it: the connection, for the next
  /// request to the same server. Otherwise it is closed before the report.
  std::shared_ptr<connection> kept;
};

using handler = std::function<void(outcome)>;
/// Told what an exception from a handler said (null: not a std::exception).
using threw_fn = void (*)(const char* what);

/// Starts one round trip of `req` to `to`, bounded by `deadline` (resolve,
/// connect, write and read together), reading its answer by `rules`.
/// Call it on `ex` (a strand when several threads run its io_context): every
/// handler runs there. `done` is called exactly once, on `ex`, never inline;
/// if the io_context is destroyed first, with a dropped outcome on the
/// destroying thread. `done` should not throw; an exception from it goes to
/// `threw` (the client's own log line) and no further.
void start(boost::asio::any_io_executor ex, peer to, request req,
           reading rules, std::chrono::steady_clock::time_point deadline,
           handler done, threw_fn threw);

} // namespace vb::round_trip
