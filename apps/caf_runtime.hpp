// The CAF runtime both programs share: the protocol's message types
// (protocol/protocol.hpp, so both ends of a connection know the same wire
// types under the same names and ids), the middleman, and its heartbeats.
// The server adds its local types on top (add_local_types).
#pragma once

#include <chrono>

#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "protocol/protocol.hpp"

namespace vb {

struct caf_runtime_config : caf::actor_system_config {
  caf_runtime_config() {
    vb::add_protocol_types(*this);
    load<caf::io::middleman>();
    // Middleman heartbeats: a peer whose network silently went away is
    // noticed within the connection timeout (SPEC §5).
    set("middleman.heartbeat-interval", caf::timespan{std::chrono::seconds(1)});
    set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(5)});
    set("logger.verbosity", caf::atom("quiet"));
  }
};

} // namespace vb
