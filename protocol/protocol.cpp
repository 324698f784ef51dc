#include "protocol/protocol.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/message.hpp>

namespace vb {

const char* to_string(ec x) {
  switch (x) {
    case ec::none: return "none";
    case ec::not_found: return "not_found";
    case ec::key_missing: return "key_missing";
    case ec::key_invalid: return "key_invalid";
    case ec::storage_failed: return "storage_failed";
    case ec::unavailable: return "unavailable";
    case ec::rejected: return "rejected";
    case ec::invalid: return "invalid";
    case ec::protocol_mismatch: return "protocol_mismatch";
    case ec::removed: return "removed";
    case ec::rate_limited: return "rate_limited";
    case ec::idempotency_key_reused: return "idempotency_key_reused";
    case ec::full: return "full";
    case ec::bad_token: return "bad_token";
    case ec::voice_full: return "voice_full";
    case ec::access_required: return "access_required";
  }
  return "unknown";
}

const char* to_string(lobby_event_type x) {
  switch (x) {
    case lobby_event_type::member_joined: return "member_joined";
    case lobby_event_type::member_left: return "member_left";
    case lobby_event_type::chat: return "chat";
    case lobby_event_type::member_moved: return "member_moved";
    case lobby_event_type::member_orphaned: return "member_orphaned";
  }
  return "unknown";
}

bool from_string(const std::string& text, lobby_event_type& x) {
  for (auto t : {lobby_event_type::member_joined, lobby_event_type::member_left,
                 lobby_event_type::chat, lobby_event_type::member_moved,
                 lobby_event_type::member_orphaned})
    if (text == to_string(t)) {
      x = t;
      return true;
    }
  return false;
}

void add_protocol_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::vb_protocol>();
  cfg.add_error_category(
    ec_category(),
    [](uint8_t code, caf::atom_value, const caf::message& ctx) {
      std::string result = "vb: ";
      result += to_string(static_cast<ec>(code));
      if (!ctx.empty()) {
        result += " (";
        result += to_string(ctx);
        result += ")";
      }
      return result;
    });
}

} // namespace vb
