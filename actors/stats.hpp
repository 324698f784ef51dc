// Counters shared between the actors that change them and the front end
// that reports them (/api/health, /metrics). Atomics only: each counter has
// one writer, readers take a relaxed look.
#pragma once

#include <atomic>
#include <cstdint>

namespace vb {

struct server_stats {
  std::atomic<uint64_t> providers{0};        // registered now
  std::atomic<uint64_t> lobbies{0};          // existing now
  std::atomic<uint64_t> members{0};          // lobby members now
  std::atomic<uint64_t> evictions{0};        // providers evicted since start
  std::atomic<uint64_t> held_sweeps{0};      // sweeps held back by the guard
  std::atomic<uint64_t> snapshot_writes{0};  // snapshot writes since start
  std::atomic<uint64_t> snapshot_failures{0};
  std::atomic<uint64_t> snapshot_write_ns{0}; // total time spent writing
};

} // namespace vb
