// Wall-clock time as the API and the snapshots show it: unix seconds.
#pragma once

#include <chrono>

namespace vb {

/// Now, in unix seconds (like Python's time.time()).
inline double unix_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

} // namespace vb
