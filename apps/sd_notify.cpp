#include "apps/sd_notify.hpp"

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace vb {

bool sd_notify(const std::string& state, std::string* error) {
  auto fail = [&](std::string why) {
    if (error)
      *error = std::move(why);
    return false;
  };
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (env == nullptr || *env == '\0')
    return false;
  std::string name{env};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (name.size() >= sizeof(addr.sun_path))
    return fail("NOTIFY_SOCKET is too long");
  if (name[0] != '/' && name[0] != '@')
    return fail("NOTIFY_SOCKET must be an absolute path or start with '@'");
  std::memcpy(addr.sun_path, name.data(), name.size());
  // An abstract socket: a leading NUL, and the length counts exactly the
  // name (no terminating NUL).
  if (name[0] == '@')
    addr.sun_path[0] = '\0';
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path)
                                    + name.size() + (name[0] == '@' ? 0 : 1));
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return fail(std::string{"socket: "} + std::strerror(errno));
  auto sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                       reinterpret_cast<const sockaddr*>(&addr), len);
  auto saved = errno;
  ::close(fd);
  if (sent < 0 || static_cast<size_t>(sent) != state.size())
    return fail(std::string{"sendto "} + name + ": " + std::strerror(saved));
  return true;
}

} // namespace vb
