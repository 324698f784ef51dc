// A real etcd member for the tests: Debian's etcd-server started on free
// loopback ports in a temp dir (design cluster-etcd.md §6.1), stopped by its
// pid. Tests that need one skip with a warning when `etcd` is not on PATH.
#pragma once

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace vb::test {

/// `etcd` on PATH, or "".
inline std::string find_etcd() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    auto colon = dirs.find(':', start);
    if (colon == std::string::npos)
      colon = dirs.size();
    auto candidate = dirs.substr(start, colon - start) + "/etcd";
    if (::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    start = colon + 1;
  }
  return {};
}

inline uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// One etcd member on free loopback ports in a temp dir; stopped (by its
/// pid) and removed at the end.
class etcd_member {
public:
  /// Its client URL is https when `tls` names its certificate, key and the
  /// CA its clients' certificates must come from (--client-cert-auth).
  struct tls_files {
    std::string cert, key, ca;
  };

  explicit etcd_member(const std::string& binary, const tls_files& tls = {}) {
    char dir_template[] = "/tmp/vb-etcd-XXXXXX";
    REQUIRE(::mkdtemp(dir_template) != nullptr);
    dir_ = dir_template;
    auto client_port = std::to_string(free_port());
    auto peer_port = std::to_string(free_port());
    url_ = (tls.cert.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:")
           + client_port;
    auto peer = "http://127.0.0.1:" + peer_port;
    std::vector<std::string> args{binary,
                                  "--name", "t",
                                  "--data-dir", dir_ + "/data",
                                  "--listen-client-urls", url_,
                                  "--advertise-client-urls", url_,
                                  "--listen-peer-urls", peer,
                                  "--initial-advertise-peer-urls", peer,
                                  "--initial-cluster", "t=" + peer,
                                  "--logger=zap",
                                  "--log-outputs=stderr"};
    if (!tls.cert.empty())
      args.insert(args.end(), {"--cert-file", tls.cert, "--key-file", tls.key,
                               "--trusted-ca-file", tls.ca,
                               "--client-cert-auth"});
    auto log = dir_ + "/etcd.log";
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      std::freopen(log.c_str(), "w", stderr);
      std::freopen("/dev/null", "w", stdout);
      std::vector<char*> argv;
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }

  ~etcd_member() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  const std::string& url() const {
    return url_;
  }

private:
  std::string dir_;
  std::string url_;
  pid_t pid_ = -1;
};


} // namespace vb::test
