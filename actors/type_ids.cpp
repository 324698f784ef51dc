#include <caf/actor_system_config.hpp>

#include "actors/interfaces.hpp"

namespace vb {

const char* to_string(move_reason x) {
  switch (x) {
    case move_reason::evicted: return "evicted";
    case move_reason::removed: return "removed";
    case move_reason::drained: return "drain timed out";
    case move_reason::lost: return "run lost";
    case move_reason::reconciled: return "run missing at re-registration";
    case move_reason::orphan: return "orphaned";
  }
  return "unknown";
}

const char* to_string(leave_reason x) {
  switch (x) {
    case leave_reason::asked: return "asked";
    case leave_reason::empty_lobby: return "empty_lobby";
  }
  return "unknown";
}

void add_local_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::vb_local>();
  cfg.add_message_types<caf::id_block::vb_actors>();
}

void add_message_types(caf::actor_system_config& cfg) {
  add_protocol_types(cfg);
  add_local_types(cfg);
}

} // namespace vb
