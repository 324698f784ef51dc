// Mutual TLS (tls/): sessions over socket pairs on one thread, as the
// middleman's I/O thread runs them, and the CAF transport over loopback with
// real actor systems: a linked peer keeps its link while strangers knock.
#include <catch2/catch.hpp>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tests/tls_certificates.hpp"
#include "tls/caf_transport.hpp"
#include "tls/session.hpp"

using vb::tls::io_status;
using vb::tls::role;
using vb::tls::session;

namespace {

/// Failures a context reported, awaited from any thread.
struct failure_log {
  std::mutex mx;
  std::condition_variable cv;
  std::vector<std::pair<std::string, std::string>> seen; // peer, reason

  vb::tls::failure_sink sink() {
    return [this](const std::string& peer, const std::string& reason) {
      std::lock_guard<std::mutex> guard{mx};
      seen.emplace_back(peer, reason);
      cv.notify_all();
    };
  }

  bool await(std::size_t n) {
    std::unique_lock<std::mutex> guard{mx};
    return cv.wait_for(guard, std::chrono::seconds(20),
                       [&] { return seen.size() >= n; });
  }

  std::vector<std::pair<std::string, std::string>> copy() {
    std::lock_guard<std::mutex> guard{mx};
    return seen;
  }
};

std::shared_ptr<const vb::tls::context> load(const vb::tls::credentials& c,
                                             vb::tls::failure_sink sink = {}) {
  std::string err;
  auto ctx = vb::tls::context::load(c, std::move(sink), err);
  INFO(err);
  REQUIRE(ctx);
  return ctx;
}

/// A connected pair of non-blocking sockets: [0] the server's, [1] the client's.
struct socket_pair {
  int fd[2];
  socket_pair() {
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fd) == 0);
    for (int f : fd)
      fcntl(f, F_SETFL, O_NONBLOCK);
  }
  ~socket_pair() {
    for (int f : fd)
      if (f >= 0)
        close(f);
  }
  void close_client() {
    close(fd[1]);
    fd[1] = -1;
  }
};

/// A client of plain OpenSSL with whatever the test gives it (no
/// certificate, say). It empties the thread's error queue after each call,
/// so any error left behind is the session's under test.
struct raw_client {
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  SSL* ssl = nullptr;
  explicit raw_client(int fd, const std::string& ca) {
    SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_connect_state(ssl);
  }
  ~raw_client() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  void step() {
    char c;
    if (SSL_is_init_finished(ssl) == 0)
      SSL_do_handshake(ssl);
    else
      SSL_read(ssl, &c, 1);
    ERR_clear_error();
  }
};

/// Steps the server until its handshake is done or failed (the client end
/// is stepped by `client`), for at most 200 rounds.
template <class Client>
io_status handshake(session& server, Client&& client) {
  char buf[64];
  std::size_t n = 0;
  for (int i = 0; i < 200; ++i) {
    client();
    auto s = server.read(buf, sizeof buf, n);
    if (s == io_status::failed)
      return s;
    if (!server.handshaking() && server.established())
      return io_status::ok;
  }
  FAIL("the handshake neither finished nor failed");
  return io_status::failed;
}

/// Moves `text` from `from` to `to` (both established).
std::string send(session& from, session& to, const std::string& text) {
  std::size_t n = 0;
  REQUIRE(from.write(text.data(), text.size(), n) == io_status::ok);
  REQUIRE(n == text.size());
  std::string got(text.size(), '\0');
  std::size_t have = 0;
  for (int i = 0; i < 100 && have < got.size(); ++i) {
    REQUIRE(to.read(got.data() + have, got.size() - have, n) == io_status::ok);
    have += n;
  }
  return got;
}

struct fixture {
  vb::test::certificate_dir certs;
  failure_log server_failures;
  failure_log client_failures;
  fixture() {
    certs.make_ca("ca");
    certs.make_cert("server", "ca");
    certs.make_cert("provider", "ca");
    certs.make_cert("expired", "ca", -60);
    certs.make_ca("other-ca");
    certs.make_cert("intruder", "other-ca");
  }
  std::shared_ptr<const vb::tls::context> server_ctx() {
    return load(certs.credentials("server", "ca"), server_failures.sink());
  }
  std::shared_ptr<const vb::tls::context> client_ctx(const std::string& who) {
    return load(certs.credentials(who, "ca"), client_failures.sink());
  }
};

/// A server session with a client of `who`'s certificate: their handshake's
/// result as the server sees it.
io_status handshake_with(fixture& f, const std::string& who, socket_pair& p,
                         session& server) {
  session client{f.client_ctx(who), p.fd[1], role::connect, "the server"};
  char c;
  std::size_t n = 0;
  return handshake(server, [&] { client.read(&c, 1, n); });
}

} // namespace

TEST_CASE("tls: a client with a certificate of the CA and the server handshake, "
          "and bytes cross both ways") {
  fixture f;
  socket_pair p;
  session server{f.server_ctx(), p.fd[0], role::accept, "peer"};
  session client{f.client_ctx("provider"), p.fd[1], role::connect, "server"};
  CHECK(server.handshaking());
  char c;
  std::size_t n = 0;
  REQUIRE(handshake(server, [&] { client.read(&c, 1, n); }) == io_status::ok);
  CHECK_FALSE(client.handshaking());
  CHECK(send(server, client, "hello provider") == "hello provider");
  CHECK(client.established());
  CHECK(send(client, server, "hello server") == "hello server");
  // Nothing to read: the socket would block, which is no failure.
  CHECK(server.read(&c, 1, n) == io_status::ok);
  CHECK(n == 0);
  CHECK(server.write(&c, 0, n) == io_status::idle);
  CHECK(f.server_failures.copy().empty());
  CHECK(f.client_failures.copy().empty());
}

TEST_CASE("tls: a handshake that fails leaves nothing in the thread's error "
          "queue, and an idle linked connection reads on") {
  // CAF 0.17's OpenSSL session left the error there; OpenSSL's
  // SSL_get_error then called the next connection's would-block read of
  // the same thread a failure, and the middleman closed it.
  fixture f;
  socket_pair linked_pair;
  session linked{f.server_ctx(), linked_pair.fd[0], role::accept, "linked"};
  session provider{f.client_ctx("provider"), linked_pair.fd[1], role::connect,
                   "server"};
  char c;
  std::size_t n = 0;
  REQUIRE(handshake(linked, [&] { provider.read(&c, 1, n); }) == io_status::ok);

  socket_pair p;
  session stranger{f.server_ctx(), p.fd[0], role::accept, "127.0.0.1:4711"};
  raw_client no_certificate{p.fd[1], f.certs.path("ca.pem")};
  REQUIRE(handshake(stranger, [&] { no_certificate.step(); }) == io_status::failed);
  CHECK(ERR_peek_error() == 0);
  CHECK(linked.read(&c, 1, n) == io_status::ok);
  CHECK(n == 0);
  CHECK(send(provider, linked, "still here") == "still here");

  // Reported once, with the peer and OpenSSL's reason.
  CHECK(stranger.read(&c, 1, n) == io_status::failed);
  auto seen = f.server_failures.copy();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].first == "127.0.0.1:4711");
  CHECK(seen[0].second == "peer did not return a certificate");
  CHECK(stranger.failure() == seen[0].second);
}

TEST_CASE("tls: the server refuses another CA's certificate and an expired one, "
          "saying why") {
  fixture f;
  SECTION("another CA's") {
    socket_pair p;
    session server{f.server_ctx(), p.fd[0], role::accept, "peer"};
    CHECK(handshake_with(f, "intruder", p, server) == io_status::failed);
    CHECK(server.failure()
          == "certificate verify failed (unable to get local issuer certificate)");
  }
  SECTION("expired") {
    socket_pair p;
    session server{f.server_ctx(), p.fd[0], role::accept, "peer"};
    CHECK(handshake_with(f, "expired", p, server) == io_status::failed);
    CHECK(server.failure() == "certificate verify failed (certificate has expired)");
  }
  CHECK(f.server_failures.copy().size() == 1);
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("tls: a client refused by the server hears why, as a failed handshake") {
  // TLS 1.3: the client finishes first; the server's refusal is the first
  // thing it reads.
  fixture f;
  socket_pair p;
  session server{f.server_ctx(), p.fd[0], role::accept, "peer"};
  session client{f.client_ctx("intruder"), p.fd[1], role::connect, "the server"};
  char c;
  std::size_t n = 0;
  io_status last = io_status::ok;
  handshake(server, [&] { last = client.read(&c, 1, n); });
  for (int i = 0; i < 10 && last != io_status::failed; ++i)
    last = client.read(&c, 1, n);
  CHECK(last == io_status::failed);
  auto seen = f.client_failures.copy();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].first == "the server");
  CHECK(seen[0].second == "tlsv1 alert unknown ca");
}

TEST_CASE("tls: plain bytes, and a peer that closes mid-handshake, fail the "
          "handshake") {
  fixture f;
  socket_pair p;
  session server{f.server_ctx(), p.fd[0], role::accept, "peer"};
  SECTION("plain bytes") {
    const char garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    REQUIRE(write(p.fd[1], garbage, sizeof garbage - 1) > 0);
    CHECK(handshake(server, [] {}) == io_status::failed);
    CHECK_FALSE(server.failure().empty());
  }
  SECTION("closed") {
    p.close_client();
    CHECK(handshake(server, [] {}) == io_status::failed);
    CHECK(server.failure() == "unexpected eof while reading");
  }
  CHECK(f.server_failures.copy().size() == 1);
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("tls: credentials that do not fit are refused at load, saying which") {
  fixture f;
  std::string err;
  auto wrong_key = f.certs.credentials("server", "ca");
  wrong_key.key = f.certs.path("provider.key");
  CHECK_FALSE(vb::tls::context::load(wrong_key, {}, err));
  CHECK(err == "private key " + wrong_key.key + ": key values mismatch");
  auto missing = f.certs.credentials("server", "ca");
  missing.ca = f.certs.path("nowhere.pem");
  CHECK_FALSE(vb::tls::context::load(missing, {}, err));
  CHECK(err.find("nowhere.pem") != std::string::npos);
}

// -- the CAF transport --------------------------------------------------------

namespace {

struct transport_config : caf::actor_system_config {
  transport_config() {
    load<caf::io::middleman>();
    set("logger.verbosity", caf::atom("quiet"));
  }
};

/// A blocking TCP connection to 127.0.0.1:port.
int dial(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

/// Knocks with a TLS client of plain OpenSSL (`cert` empty: none) and
/// waits for the server to close the connection.
void knock(uint16_t port, const vb::test::certificate_dir& certs,
           const std::string& cert) {
  int fd = dial(port);
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  SSL_CTX_load_verify_locations(ctx, certs.path("ca.pem").c_str(), nullptr);
  if (!cert.empty()) {
    SSL_CTX_use_certificate_chain_file(ctx, certs.path(cert + ".pem").c_str());
    SSL_CTX_use_PrivateKey_file(ctx, certs.path(cert + ".key").c_str(),
                                SSL_FILETYPE_PEM);
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) == 1) {
    char c;
    SSL_read(ssl, &c, 1); // the refusal, then the close
  }
  ERR_clear_error();
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  close(fd);
}

} // namespace

TEST_CASE("tls transport: a linked peer keeps its link while strangers knock "
          "without a certificate, with another CA's, an expired one, or plain "
          "bytes") {
  fixture f;
  transport_config server_cfg;
  caf::actor_system server_sys{server_cfg};
  auto server = vb::tls::caf_transport::start(server_sys, f.server_ctx());
  auto adder = server_sys.spawn([]() -> caf::behavior {
    return {[](int x) { return x + 1; }};
  });
  auto port = caf::make_function_view(server->actor())(
    caf::publish_atom_v, uint16_t{0}, caf::actor_cast<caf::strong_actor_ptr>(adder),
    std::set<std::string>{}, std::string{"127.0.0.1"}, true);
  REQUIRE(port);

  transport_config client_cfg;
  caf::actor_system client_sys{client_cfg};
  auto client = vb::tls::caf_transport::start(client_sys, f.client_ctx("provider"));
  auto linked = caf::make_function_view(client->actor())(
    caf::connect_atom_v, std::string{"127.0.0.1"}, *port);
  REQUIRE(linked);
  auto remote = caf::actor_cast<caf::actor>(std::get<1>(*linked));
  REQUIRE(remote);
  caf::scoped_actor self{client_sys};
  self->monitor(remote);
  auto ask = [&](int x) {
    int answer = 0;
    self->request(remote, std::chrono::seconds(10), x)
      .receive([&](int y) { answer = y; },
               [&](caf::error& err) { FAIL(client_sys.render(err)); });
    return answer;
  };
  REQUIRE(ask(1) == 2);

  constexpr int rounds = 5;
  for (int i = 0; i < rounds; ++i) {
    knock(*port, f.certs, "");
    knock(*port, f.certs, "intruder");
    knock(*port, f.certs, "expired");
    int fd = dial(*port);
    const char garbage[] = "\x16\x03\x01\x00\x05hello";
    REQUIRE(write(fd, garbage, sizeof garbage - 1) > 0);
    char c;
    while (read(fd, &c, 1) > 0) {
    }
    close(fd);
    // The linked peer is asked between knocks: each of its reads follows
    // a failed handshake on the same I/O thread.
    CHECK(ask(i) == i + 1);
  }
  REQUIRE(f.server_failures.await(4 * rounds));
  CHECK(ask(41) == 42);
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; },
                caf::after(std::chrono::seconds(0)) >> [] {});
  CHECK_FALSE(down);
  for (auto& [peer, reason] : f.server_failures.copy()) {
    CHECK(peer.rfind("127.0.0.1:", 0) == 0);
    CHECK_FALSE(reason.empty());
  }
  CHECK(f.client_failures.copy().empty());
  caf::anon_send_exit(adder, caf::exit_reason::user_shutdown);
}
