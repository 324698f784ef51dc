// The wire block of the CAF provider protocol, pinned: each wire type's id
// and the name CAF 0.17 puts on the wire for it. A new wire type gets a new
// row at the end (docs/caf-providers.md, "Evolution"); a row never changes.
// Checked where only the protocol is compiled (tests/test_protocol.cpp) and
// where the server's local types are too (tests/test_actor_gateway.cpp).
#pragma once

#include <string>
#include <typeinfo>
#include <vector>

#include "protocol/protocol.hpp"

namespace vb::test {

struct wire_pin {
  caf::type_id_t id;          // pinned
  std::string name;           // pinned
  caf::type_id_t actual_id;   // what this build assigns
  std::string actual_name;    // what this build names it
  const std::type_info* rtti; // to ask an actor system for its wire name
};

template <class T>
wire_pin pin(caf::type_id_t id, const char* name) {
  return {id, name, caf::type_id<T>::value, caf::type_name<T>::value,
          &typeid(T)};
}

inline std::vector<wire_pin> wire_pins() {
  return {
    pin<bot_info>(200, "vb::bot_info"),
    pin<std::vector<bot_info>>(201, "std::vector<vb::bot_info>"),
    pin<provider_registration>(202, "vb::provider_registration"),
    pin<session>(203, "vb::session"),
    pin<dispatch_request>(204, "vb::dispatch_request"),
    pin<bot_run>(205, "vb::bot_run"),
    pin<std::vector<bot_run>>(206, "std::vector<vb::bot_run>"),
    pin<registration_result>(207, "vb::registration_result"),
    pin<lobby_event>(208, "vb::lobby_event"),
    pin<bot_host_actor>(209, "vb::bot_host_actor"),
    pin<provider_gateway_actor>(210, "vb::provider_gateway_actor"),
    pin<heartbeat>(211, "vb::heartbeat"),
  };
}

} // namespace vb::test
