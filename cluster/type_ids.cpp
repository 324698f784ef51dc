// Registers cluster mode's messages, and names the enums they carry.
#include <caf/actor_system_config.hpp>

#include "cluster/messages.hpp"

namespace vb {

namespace etcd {

const char* to_string(event_type x) {
  return x == event_type::put ? "put" : "delete";
}

const char* to_string(txn_op::kind x) {
  switch (x) {
    case txn_op::kind::put:
      return "put";
    case txn_op::kind::range:
      return "range";
    default:
      return "delete";
  }
}

const char* to_string(watch_update::kind x) {
  switch (x) {
    case watch_update::kind::created:
      return "created";
    case watch_update::kind::events:
      return "events";
    case watch_update::kind::progress:
      return "progress";
    case watch_update::kind::broken:
      return "broken";
    default:
      return "compacted";
  }
}

} // namespace etcd

namespace cluster_detail {

const char* to_string(lease_event::kind x) {
  switch (x) {
    case lease_event::kind::granted:
      return "granted";
    case lease_event::kind::lost:
      return "lost";
    case lease_event::kind::registered:
      return "registered";
    default:
      return "register_failed";
  }
}

} // namespace cluster_detail

void add_cluster_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::vb_cluster>();
}

} // namespace vb
