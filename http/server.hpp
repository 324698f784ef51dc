// The Beast front end: a listener and one session per connection, each on
// its own strand. Turns HTTP requests into actor messages and actor replies
// into HTTP responses; no I/O thread ever waits for an actor.
// Beast stays out of this header: the implementation hides behind a pimpl.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "actors/interfaces.hpp"
#include "model/config.hpp"

namespace caf {
class actor_system;
}

namespace vb {

struct server_stats;

/// The actors and counters the front end talks to.
struct backend {
  caf::actor_system* sys = nullptr;
  registry_actor registry;
  std::shared_ptr<server_stats> stats;
};

class http_server {
public:
  http_server(server_options opts, backend be);
  ~http_server();

  /// Binds and listens, and starts the I/O threads. Returns the bound port.
  /// Throws std::system_error when the address cannot be bound.
  uint16_t start();

  /// Stops accepting, gives in-flight requests up to `grace_ms` to finish,
  /// then stops the I/O threads.
  void stop(int grace_ms = 3000);

  struct impl; // opaque: Beast stays in server.cpp

private:
  std::unique_ptr<impl> impl_;
};

} // namespace vb
