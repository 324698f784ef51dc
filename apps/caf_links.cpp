#include "apps/caf_links.hpp"

#include <caf/actor_system.hpp>
#include <caf/io/basp_broker.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/network/multiplexer.hpp>

namespace vb {

std::function<void(std::vector<caf::node_id>)> link_closer(caf::actor_system& sys) {
  auto& mm = sys.middleman();
  auto basp = mm.named_broker<caf::io::basp_broker>(caf::atom("BASP"));
  auto* backend = &mm.backend();
  return [backend, basp](std::vector<caf::node_id> nodes) {
    backend->post([basp, nodes = std::move(nodes)] {
      auto* b = static_cast<caf::io::basp_broker*>(
        caf::actor_cast<caf::abstract_actor*>(basp));
      if (b->getf(caf::abstract_actor::is_terminated_flag))
        return;
      for (auto& node : nodes)
        // Forgotten first, as CAF's own heartbeat timeout does: a closed
        // scribe reports nothing, so the route and the proxies would stay.
        while (auto hdl = b->instance.tbl().lookup_direct(node)) {
          b->connection_cleanup(*hdl, caf::sec::none);
          b->close(*hdl);
        }
    });
  };
}

} // namespace vb
