// An asynchronous HTTP/1.1 client for bot providers that speak the original
// HTTP protocol (SPEC §4): POST {base_url}/bots/{bot_name}/join,
// POST {base_url}/bots/runs/{run_id}/stop and GET {base_url}/bots.
//
// It never blocks the caller: `request` only queues work on the client's own
// I/O thread(s), and the completion runs there. An actor caller turns the
// completion into a message to itself (`anon_send(self_handle, ...)`).
// Beast stays out of this header: the implementation hides behind a pimpl.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace vb {

/// What one request ended with. Exactly one of two shapes:
/// - a response: `error` is empty and `status` is the HTTP status (any
///   status, 2xx or not; `ok()` says whether it was 2xx);
/// - no (complete) response: `error` says why and `status` is 0, even when a
///   status line had been read before the failure (a body over the limit).
struct http_result {
  int status = 0;     // HTTP status; 0 when no (complete) response was received
  std::string body;   // response body, at most http_client::max_body_bytes
  std::string error;  // non-empty when there is no complete response, one of:
                      // "connection refused", "timeout", "host not found",
                      // "response too large", "response headers too large",
                      // "connection closed" (EOF before a whole response),
                      // "bad url: <url>", "bad method: <method>",
                      // "https providers are not supported",
                      // "client stopped" (the client was destroyed first),
                      // otherwise the system's error message.
  bool timed_out = false; // true iff error == "timeout"
  bool ok() const noexcept {
    return error.empty() && status >= 200 && status < 300;
  }
};

/// An absolute URL split for a request. `host` is bare: an IPv6 literal is
/// stored without its brackets ("::1"). `port` is always set: the explicit
/// one, else "80" for http and "443" for https. `target` is the path plus
/// query, at least "/"; a fragment is dropped. `scheme` is lower case.
struct url_parts {
  std::string scheme, host, port, target;
};

/// Splits `http[s]://host[:port][/path][?query][#fragment]`. IPv6 literals go
/// in brackets. Returns false (and leaves `out` untouched) if the scheme is
/// not http or https, the host is empty or has characters outside
/// [A-Za-z0-9._-] (IPv6: hex digits, ':' and '.'; no zone id), the port is not
/// 1..65535, the URL carries user info ('@'), or any character is a space, a
/// control character or non-ASCII (so nothing can smuggle bytes into the
/// request line or the Host header). An empty port ("http://h:/") means the
/// default port.
bool parse_url(std::string_view url, url_parts& out);

/// Joins a base URL (with or without trailing slashes, with or without a path
/// prefix) and a path: join_url("http://h:1/p/", "/bots") ==
/// "http://h:1/p/bots". A path without a leading '/' gets one. A query or
/// fragment in `base` is not supported (the path is appended after it).
std::string join_url(std::string_view base, std::string_view path);

/// Percent-encodes one path segment (everything except ALPHA, DIGIT and
/// "-._~"), for values that come from outside, such as a provider's run_id:
/// join_url(base, "/bots/runs/" + encode_path_segment(run_id) + "/stop").
std::string encode_path_segment(std::string_view segment);

/// The client. Thread-safe: `request` may be called from any thread at the
/// same time. Each request runs on its own strand. Connections are kept
/// alive: after a complete response that allows it, the connection waits in
/// a pool (at most 64 per endpoint) for the next request to the same
/// host and port. A pooled connection that fails before any answer (the
/// provider closed it while idle) is replaced by a new one, once.
class http_client {
public:
  /// Response bodies larger than this end in error "response too large".
  static constexpr std::size_t max_body_bytes = 1024 * 1024;

  /// Owns an io_context and `threads` I/O threads (at least one), started
  /// here.
  explicit http_client(unsigned threads = 1);

  /// Stops the io_context and joins the I/O threads. Requests still in
  /// flight are abandoned (their sockets closed) and their callbacks are
  /// called with error "client stopped" — on the destroying thread, before
  /// the destructor returns (the one exception to "on a client thread").
  /// So every callback is called exactly once, even here. A callback must
  /// not call into the client that is being destroyed, and the client must
  /// not be destroyed from one of its own callbacks (a thread cannot join
  /// itself): destroy it from its owner's thread. The destructor waits
  /// for a host name lookup already running in the resolver's thread
  /// (getaddrinfo cannot be interrupted); numeric hosts never wait.
  ~http_client();

  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  using callback = std::function<void(http_result)>;

  /// Starts `method url` with `body` (sent with `Content-Type:
  /// application/json` when non-empty), bounded by ONE overall deadline
  /// `timeout` from this call, covering resolve, connect, write and read
  /// (clamped to 0..24 h; 0 times out at once). `method` is an upper-case
  /// HTTP method ("GET", "POST"); another gives "bad method". `done` is called
  /// exactly once, on a client thread, never inline from `request` — also for
  /// errors known at once (bad URL, https, unknown method), which are posted.
  /// https:// URLs are refused ("https providers are not supported"): no TLS
  /// in this build. `done` should not throw; an exception from it is logged
  /// and swallowed.
  void request(std::string method, std::string url, std::string body,
               std::chrono::milliseconds timeout, callback done);

  struct impl; // opaque: Beast and Asio stay in client.cpp

private:
  std::unique_ptr<impl> impl_;
};

} // namespace vb
