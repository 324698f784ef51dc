// CAF connections over mutual TLS (SPEC §5): an actor with the middleman
// actor's interface (publish, connect, unpublish), whose connections run
// through tls::session on the middleman's I/O thread. It takes the place of
// caf::openssl's manager, which lets one peer's failed handshake break every
// other TLS connection of the process (docs/caf-providers.md, "TLS").
// OpenSSL writes to the socket with write(2): the process ignores SIGPIPE
// (apps/stop_signals.hpp).
#pragma once

#include <memory>
#include <string>

#include <caf/fwd.hpp>
#include <caf/io/middleman_actor.hpp>

#include "tls/session.hpp"

namespace vb::tls {

class caf_transport {
public:
  /// Spawns the actor; its connections use `ctx` (context::load), whose
  /// failure sink hears of every failed handshake.
  static std::unique_ptr<caf_transport> start(caf::actor_system& sys,
                                              std::shared_ptr<const context> ctx);
  /// Stops the actor and waits for it: before the actor system goes.
  ~caf_transport();
  caf_transport(const caf_transport&) = delete;
  caf_transport& operator=(const caf_transport&) = delete;

  /// Ask it as the middleman's actor: (publish, port, whom, sigs, host,
  /// reuse), (connect, host, port), (unpublish, address, port). The actor
  /// is detached, and the actor system's end waits for its thread, which
  /// waits for its last handle: keep no copy beyond the system's life.
  const caf::io::middleman_actor& actor() const { return actor_; }

private:
  caf_transport(caf::actor_system& sys, caf::io::middleman_actor actor);
  caf::actor_system& sys_;
  caf::io::middleman_actor actor_;
};

} // namespace vb::tls
