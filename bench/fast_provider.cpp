// fast_provider: a minimal HTTP bot provider for the join benchmark.
//
// It speaks just enough of the original voicebot HTTP protocol (SPEC §4) to
// accept joins as fast as the loopback allows, so that a join benchmark
// measures voicebot-server and not the provider:
//   POST /bots/<bot>/join        -> 200 {"status":"ok","run_id":"<counter>"}
//   POST /bots/runs/<id>/stop    -> 200 {"status":"ok"}
//   GET  /bots                   -> 200 {"bots":[{"name":"echo",...}]}
//   GET  /stats                  -> 200 {"joins":N,"connections":M,"requests":R}
//   anything else                -> 404 {"detail":"Not Found"}
// One thread, level-triggered epoll, non-blocking sockets, keep-alive unless
// the client says "Connection: close" (voicebot-server's client opens a new
// connection per call and says so): then this side closes after the answer.
//
// Build: g++ -O2 -std=c++17 -o fast_provider fast_provider.cpp
// Run:   ./fast_provider PORT [ADDRESS=127.0.0.1]   (PORT 0 picks one; the
//        chosen port is printed as "fast_provider listening on ADDR:PORT")

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

constexpr std::size_t kMaxRequest = 1 << 20;

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

unsigned long long g_joins = 0, g_connections = 0, g_requests = 0;

struct conn {
  std::string in;
  std::string out;
  bool close_after = false;
};

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i], b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

void respond(conn& c, int status, const std::string& body) {
  const char* reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request";
  char head[256];
  int n = std::snprintf(head, sizeof head,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\n%s\r\n",
                        status, reason, body.size(),
                        c.close_after ? "Connection: close\r\n" : "");
  c.out.append(head, static_cast<std::size_t>(n));
  c.out += body;
}

/// Handles every complete request in c.in. Returns false on a protocol error.
bool handle(conn& c) {
  for (;;) {
    auto end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) return c.in.size() <= kMaxRequest;
    std::string_view head(c.in.data(), end);
    auto line_end = head.find("\r\n");
    std::string_view line = head.substr(0, line_end);
    std::size_t content_length = 0;
    bool close = false;
    bool http10 = line.size() >= 8 && line.substr(line.size() - 8) == "HTTP/1.0";
    bool keep_alive_10 = false;
    std::size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      auto next = head.find("\r\n", pos);
      if (next == std::string_view::npos) next = head.size();
      std::string_view h = head.substr(pos, next - pos);
      if (iequals_prefix(h, "content-length:")) {
        content_length = std::strtoull(std::string(trim(h.substr(15))).c_str(), nullptr, 10);
      } else if (iequals_prefix(h, "connection:")) {
        auto v = trim(h.substr(11));
        if (iequals_prefix(v, "close")) close = true;
        if (iequals_prefix(v, "keep-alive")) keep_alive_10 = true;
      } else if (iequals_prefix(h, "transfer-encoding:")) {
        return false;  // not needed by any client we serve
      }
      pos = next + 2;
    }
    if (content_length > kMaxRequest) return false;
    std::size_t total = end + 4 + content_length;
    if (c.in.size() < total) return true;  // wait for the body

    auto sp1 = line.find(' ');
    auto sp2 = line.find(' ', sp1 == std::string_view::npos ? 0 : sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) return false;
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    c.close_after = close || (http10 && !keep_alive_10);
    ++g_requests;

    auto ends_with = [](std::string_view s, std::string_view suf) {
      return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
    };
    auto starts_with = [](std::string_view s, std::string_view pre) {
      return s.substr(0, pre.size()) == pre;
    };
    if (method == "POST" && starts_with(target, "/bots/runs/") && ends_with(target, "/stop")) {
      respond(c, 200, R"({"status":"ok"})");
    } else if (method == "POST" && starts_with(target, "/bots/") && ends_with(target, "/join")) {
      ++g_joins;
      respond(c, 200, "{\"status\":\"ok\",\"run_id\":\"" + std::to_string(g_joins) + "\"}");
    } else if (method == "GET" && target == "/bots") {
      respond(c, 200, R"({"bots":[{"name":"echo","description":"bench echo bot"}]})");
    } else if (method == "GET" && target == "/stats") {
      respond(c, 200, "{\"joins\":" + std::to_string(g_joins) + ",\"connections\":"
                          + std::to_string(g_connections) + ",\"requests\":"
                          + std::to_string(g_requests) + "}");
    } else {
      respond(c, 404, R"({"detail":"Not Found"})");
    }
    c.in.erase(0, total);
    if (c.close_after) {
      c.in.clear();
      return true;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int port = argc > 1 ? std::atoi(argv[1]) : 0;
  const char* address = argc > 2 ? argv[2] : "127.0.0.1";

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, address, &addr.sin_addr) != 1) {
    std::fprintf(stderr, "fast_provider: bad address %s\n", address);
    return 2;
  }
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0
      || listen(lfd, 4096) != 0) {
    std::fprintf(stderr, "fast_provider: cannot listen on %s:%d: %s\n", address, port,
                 std::strerror(errno));
    return 1;
  }
  socklen_t len = sizeof addr;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("fast_provider listening on %s:%d\n", address, ntohs(addr.sin_port));
  std::fflush(stdout);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

  std::unordered_map<int, conn> conns;
  auto drop = [&](int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    conns.erase(fd);
  };
  // Writes what is pending; closes when done and asked to. Returns false if
  // the connection is gone.
  auto flush = [&](int fd, conn& c) {
    while (!c.out.empty()) {
      ssize_t n = send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        c.out.erase(0, static_cast<std::size_t>(n));
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        epoll_event e{};
        e.events = EPOLLIN | EPOLLOUT;
        e.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
        return true;
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        drop(fd);
        return false;
      }
    }
    if (c.close_after) {
      drop(fd);
      return false;
    }
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
    return true;
  };

  epoll_event events[256];
  char buf[16384];
  while (!g_stop) {
    int n = epoll_wait(ep, events, 256, 500);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          int cfd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (cfd < 0) break;  // EAGAIN, or a transient error: epoll tells us again
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event e{};
          e.events = EPOLLIN;
          e.data.fd = cfd;
          epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &e);
          conns.emplace(cfd, conn{});
          ++g_connections;
        }
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      conn& c = it->second;
      if (events[i].events & EPOLLOUT) {
        if (!flush(fd, c)) continue;
        if (!c.out.empty()) continue;
      }
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        bool eof = false;
        for (;;) {
          ssize_t r = recv(fd, buf, sizeof buf, 0);
          if (r > 0) {
            c.in.append(buf, static_cast<std::size_t>(r));
            if (static_cast<std::size_t>(r) < sizeof buf) break;
          } else if (r == 0) {
            eof = true;
            break;
          } else if (errno == EINTR) {
            continue;
          } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
          } else {
            eof = true;
            break;
          }
        }
        if (!c.close_after || c.out.empty()) {
          if (!handle(c)) {
            drop(fd);
            continue;
          }
        }
        if (!c.out.empty() || c.close_after) {
          if (!flush(fd, c)) continue;
        }
        if (eof && c.out.empty()) drop(fd);
      }
    }
  }
  std::printf("fast_provider: %llu joins, %llu connections, %llu requests\n", g_joins,
              g_connections, g_requests);
  return 0;
}
