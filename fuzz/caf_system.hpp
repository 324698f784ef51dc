// The actor system of the fuzz targets that need one (caf_messages,
// http_request): the server's message types, quiet, never destroyed (it
// outlives every input, and actors of the last input may still be exiting
// at the exit).
#pragma once

#include <caf/all.hpp>

#include "actors/interfaces.hpp"

namespace vb::fuzz {

inline caf::actor_system* make_system(int max_threads) {
  static caf::actor_system_config cfg;
  vb::add_message_types(cfg);
  cfg.set("scheduler.max-threads", max_threads);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  cfg.set("logger.console-verbosity", caf::atom("quiet"));
  return new caf::actor_system(cfg);
}

} // namespace vb::fuzz
