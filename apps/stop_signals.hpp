// The stop signals of both programs: SIGTERM and SIGINT are blocked in every
// thread (threads started later inherit the mask) and waited for with
// sigwait; SIGPIPE is ignored (a peer that went away is an error, not a
// signal).
#pragma once

#include <csignal>

#include <pthread.h>

namespace vb {

/// Blocks SIGTERM and SIGINT in the calling thread and ignores SIGPIPE;
/// returns the set to pass to sigwait. Call before starting any thread.
inline sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return signals;
}

} // namespace vb
