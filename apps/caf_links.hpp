// Closing this process's CAF connections to given nodes, from this side:
// plain and TLS links alike, both run by the middleman's BASP broker. CAF
// 0.17 has no message for it (unpublish closes only the acceptor).
#pragma once

#include <functional>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/node_id.hpp>

namespace vb {

/// Made once at start, on the main thread (CAF's named_broker lookup is not
/// thread-safe); the function it gives may be called from any actor: the
/// work runs on the middleman's I/O thread, where the broker lives.
std::function<void(std::vector<caf::node_id>)> link_closer(caf::actor_system& sys);

} // namespace vb
