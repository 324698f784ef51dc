// The CAF runtime both programs share: the message types of
// actors/messages.hpp and actors/interfaces.hpp (so type ids agree on both
// ends of a connection), the middleman, and its heartbeats.
#pragma once

#include <chrono>

#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "actors/interfaces.hpp"

namespace vb {

struct caf_runtime_config : caf::actor_system_config {
  caf_runtime_config() {
    vb::add_message_types(*this);
    load<caf::io::middleman>();
    // Middleman heartbeats: a peer whose network silently went away is
    // noticed within the connection timeout (SPEC §5).
    set("middleman.heartbeat-interval", caf::timespan{std::chrono::seconds(1)});
    set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(5)});
    set("logger.verbosity", caf::atom("quiet"));
  }
};

} // namespace vb
