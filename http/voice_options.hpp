// What the lobby WebSocket needs for voice (SPEC §9): the ICE servers of a
// welcome, the socket's message rate, the largest signal, and the counters.
// Built once by the API from the options (http/api.cpp).
#pragma once

#include <cstddef>
#include <memory>

#include "model/ice.hpp"

namespace vb {

struct server_stats;

struct voice_options {
  /// The ICE servers of a welcome.
  ice_options ice;
  /// Messages a socket may send per second; past it, closed with 1008.
  double signal_rate = 50;
  /// The largest `data` of a signal (its JSON text).
  std::size_t max_signal_bytes = 64 * 1024;
  /// Counts signals, refused hellos, TURN credentials (may be null).
  std::shared_ptr<server_stats> stats;
};

} // namespace vb
