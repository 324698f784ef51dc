// Small helpers of the tests' loopback servers (plain POSIX sockets).
#pragma once

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdint>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

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

/// Binds `fd`, a new TCP socket, to a free port of 127.0.0.1; returns it.
inline uint16_t bind_loopback(int fd) {
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  return ntohs(addr.sin_port);
}

/// A loopback port that refuses connections: bound once, never listened on.
inline uint16_t refusing_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  auto port = bind_loopback(fd);
  ::close(fd);
  return port;
}

} // namespace vb::test
