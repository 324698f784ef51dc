// The provider-link layer's seam for HTTP providers: what the dispatcher
// (actors/) compiles against. Plain types only: no Beast, no Asio, no CAF.
// The real link is link/http_client.hpp (Beast, keep-alive pool); the actor
// tests put a scripted double behind the same interface.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace vb {

/// What one request ended with. Exactly one of two shapes:
/// - a response: `error` is empty and `status` is the HTTP status (200 to
///   599, 2xx or not; `ok()` says whether it was 2xx);
/// - no (complete) response: `error` says why and `status` is 0, even when a
///   status line had been read before the failure (a body over the limit).
/// It is also the dispatcher's message from the link's thread to itself
/// (`atom::done`), so it has a CAF type id (actors/messages.hpp).
struct http_result {
  int status = 0;     // HTTP status; 0 when no (complete) response was received
  std::string body;   // response body, at most http_client::max_body_bytes
  std::string error;  // non-empty when there is no complete response, one of:
                      // "connection refused", "timeout", "host not found",
                      // "response too large", "response headers too large",
                      // "connection closed" (EOF before a whole response),
                      // "bad status N" (a status outside 200-599),
                      // "bad url: <url>", "bad method: <method>",
                      // "https providers are not supported",
                      // "client stopped" (the client was destroyed first),
                      // otherwise the system's error message.
  bool timed_out = false; // true iff error == "timeout"
  bool ok() const noexcept {
    return error.empty() && status >= 200 && status < 300;
  }
  /// True when the provider answered at all (any status).
  bool answered() const noexcept {
    return error.empty() && status > 0;
  }
};

/// An outbound HTTP link to providers. Implementations are thread-safe and
/// never block the caller.
class http_link {
public:
  using callback = std::function<void(http_result)>;

  virtual ~http_link() = default;

  /// Starts `method url` with `body` (JSON when non-empty), bounded by one
  /// overall deadline `timeout` from this call. `url` is in model/url.hpp's
  /// grammar (else "bad url: ..."). `done` is called exactly once; the real
  /// client calls it on its own thread, never inline.
  virtual void request(std::string method, std::string url, std::string body,
                       std::chrono::milliseconds timeout, callback done) = 0;
};

} // namespace vb
