// The provider link for HTTP providers: an asynchronous HTTP/1.1 client for
// bot providers that speak the original HTTP protocol (SPEC §4): POST
// {base_url}/bots/{bot_name}/join, POST {base_url}/bots/runs/{run_id}/stop
// and GET {base_url}/bots.
//
// It never blocks the caller: `request` only queues work on the client's own
// I/O thread(s), and the completion runs there. An actor caller turns the
// completion into a message to itself (`anon_send(self_handle, ...)`).
// Beast stays out of this header: the implementation hides behind a pimpl.
// URLs are parsed with model/url.hpp, the grammar validation uses too.
// Only the server's main constructs it; actors see it as an `http_link`.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "link/http_link.hpp"

namespace vb {

/// The client. Thread-safe: `request` may be called from any thread at the
/// same time. Each request runs on its own strand. Connections are kept
/// alive: after a complete response that allows it, the connection waits in
/// a pool (at most 64 per endpoint) for the next request to the same
/// host and port. A pooled connection that fails before any answer (the
/// provider closed it while idle) is replaced by a new one, once.
class http_client final : public http_link {
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
  ~http_client() override;

  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Starts `method url` with `body` (sent with `Content-Type:
  /// application/json` when non-empty), bounded by ONE overall deadline
  /// `timeout` from this call, covering resolve, connect, write and read
  /// (clamped to 0..24 h; 0 times out at once). `method` is an upper-case
  /// HTTP method ("GET", "POST"); another gives "bad method". `done` is called
  /// exactly once, on a client thread, never inline from `request` — also for
  /// errors known at once (bad URL, https, unknown method), which are posted.
  /// A URL outside model/url.hpp's grammar is "bad url: <url>" (the same
  /// grammar refuses a base_url at registration). https:// URLs are refused ("https providers are not supported"): no TLS
  /// in this build. `done` should not throw; an exception from it is logged
  /// and swallowed.
  void request(std::string method, std::string url, std::string body,
               std::chrono::milliseconds timeout, callback done) override;

  struct impl; // opaque: Beast and Asio stay in http_client.cpp

private:
  std::unique_ptr<impl> impl_;
};

} // namespace vb
