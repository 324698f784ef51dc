// Small helpers of the tests' loopback servers (plain POSIX sockets).
#pragma once

#include <cerrno>
#include <string>

#include <sys/socket.h>

namespace vb::test {

/// Sends all of `data` on a connected socket; false when the peer is gone.
inline bool send_all(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    auto n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

} // namespace vb::test
