#include <caf/actor_system_config.hpp>

#include "actors/interfaces.hpp"

namespace vb {

void add_local_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::vb_local>();
  cfg.add_message_types<caf::id_block::vb_actors>();
}

void add_message_types(caf::actor_system_config& cfg) {
  add_protocol_types(cfg);
  add_local_types(cfg);
}

} // namespace vb
