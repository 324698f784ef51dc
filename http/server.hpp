// The Beast front end: a listener and one session per connection, each on
// its own strand. Turns HTTP requests into actor messages and actor replies
// into HTTP responses; no I/O thread ever waits for an actor.
// Beast stays out of this header: the implementation hides behind a pimpl.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "http/api.hpp"
#include "model/config.hpp"

namespace vb {

class http_server {
public:
  explicit http_server(server_options opts);
  ~http_server();

  /// Binds and listens. Returns the bound port. Throws std::system_error
  /// when the address cannot be bound.
  uint16_t bind();

  /// Starts accepting and the I/O threads, answering with `be`.
  void start(backend be);

  /// Stops accepting, gives in-flight requests up to `grace_ms` to finish,
  /// then stops the I/O threads.
  void stop(int grace_ms = 3000);

  struct impl; // opaque: Beast stays in server.cpp

private:
  std::unique_ptr<impl> impl_;
};

} // namespace vb
