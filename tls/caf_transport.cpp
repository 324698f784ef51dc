// The CAF side of the TLS transport: a stream policy over tls::session, the
// scribe (one connection) and doorman (one listening socket) that use it,
// and a middleman actor that makes them. The same shape as CAF 0.17's
// libcaf_openssl, with three differences: one SSL_CTX for all connections,
// OpenSSL's per-thread error queue emptied around every call
// (tls/session.hpp), and a failed handshake reported with its peer.
#include "tls/caf_transport.hpp"

#include <utility>

#include <caf/actor_system.hpp>
#include <caf/detail/socket_guard.hpp>
#include <caf/io/basp_broker.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor_impl.hpp>
#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/network/doorman_impl.hpp>
#include <caf/io/network/stream_impl.hpp>
#include <caf/scoped_actor.hpp>

namespace vb::tls {

namespace {

namespace net = caf::io::network;
// Inside CAF's classes `context` names something else.
using tls_context = vb::tls::context;
using net::native_socket;
using net::rw_state;

std::string peer_of(native_socket fd) {
  auto addr = net::remote_addr_of_fd(fd);
  auto port = net::remote_port_of_fd(fd);
  if (!addr || !port)
    return "an unknown peer";
  auto host = addr->find(':') != std::string::npos ? "[" + *addr + "]" : *addr;
  return host + ":" + std::to_string(*port);
}

rw_state to_rw_state(io_status s) {
  switch (s) {
    case io_status::ok:
      return rw_state::success;
    case io_status::idle:
      return rw_state::indeterminate;
    case io_status::failed:
      break;
  }
  return rw_state::failure;
}

class tls_scribe;

/// The stream's policy: bytes through the session. When a read finishes the
/// handshake, the scribe sends what it held back meanwhile.
class tls_policy {
public:
  tls_policy(std::unique_ptr<session> s, tls_scribe* owner)
    : session_(std::move(s)), owner_(owner) {
  }

  rw_state read_some(size_t& result, native_socket, void* buf, size_t len) {
    const bool was_handshaking = session_->handshaking();
    return after(was_handshaking, session_->read(buf, len, result));
  }

  rw_state write_some(size_t& result, native_socket, const void* buf,
                      size_t len) {
    const bool was_handshaking = session_->handshaking();
    return after(was_handshaking, session_->write(buf, len, result));
  }

  bool must_read_more(native_socket, size_t threshold) {
    return session_->pending() >= threshold;
  }

  bool handshaking() const { return session_->handshaking(); }

private:
  rw_state after(bool was_handshaking, io_status s);

  std::unique_ptr<session> session_;
  tls_scribe* owner_;
};

class tls_scribe : public caf::io::scribe {
public:
  tls_scribe(net::default_multiplexer& mpx, native_socket fd,
             std::unique_ptr<session> s)
    : scribe(net::conn_hdl_from_socket(fd)),
      stream_(mpx, fd, std::move(s), this) {
  }

  void configure_read(caf::io::receive_policy::config config) override {
    stream_.configure_read(config);
    if (!launched_)
      launch();
  }

  void ack_writes(bool enable) override { stream_.ack_writes(enable); }
  // While the handshake runs, what the broker writes waits here: a stream
  // with bytes to write polls for writability, and a socket is always
  // writable, so a peer that never answers its handshake would spin the I/O
  // thread (it did: 20 silent peers, one core busy).
  std::vector<char>& wr_buf() override {
    return stream_.policy().handshaking() ? held_back_ : stream_.wr_buf();
  }
  std::vector<char>& rd_buf() override { return stream_.rd_buf(); }

  void graceful_shutdown() override {
    stream_.graceful_shutdown();
    detach(&stream_.backend(), false);
  }

  void flush() override {
    if (!stream_.policy().handshaking())
      stream_.flush(this);
  }

  void handshake_done() {
    if (held_back_.empty())
      return;
    auto& out = stream_.wr_buf();
    out.insert(out.end(), held_back_.begin(), held_back_.end());
    held_back_.clear();
    stream_.flush(this);
  }

  std::string addr() const override {
    auto x = net::remote_addr_of_fd(stream_.fd());
    return x ? *x : std::string{};
  }

  uint16_t port() const override {
    auto x = net::remote_port_of_fd(stream_.fd());
    return x ? *x : 0;
  }

  void add_to_loop() override { stream_.activate(this); }
  void remove_from_loop() override { stream_.passivate(); }

private:
  /// A stream with its policy in reach (stream_impl keeps it private).
  class tls_stream : public net::stream {
  public:
    tls_stream(net::default_multiplexer& mpx, native_socket fd,
               std::unique_ptr<session> s, tls_scribe* owner)
      : net::stream(mpx, fd), policy_(std::move(s), owner) {
    }
    void handle_event(net::operation op) override {
      handle_event_impl(op, policy_);
    }
    const tls_policy& policy() const { return policy_; }

  private:
    tls_policy policy_;
  };

  void launch() {
    launched_ = true;
    stream_.start(this);
    // One empty write starts the handshake: a client sends its hello.
    stream_.force_empty_write(this);
  }

  bool launched_ = false;
  std::vector<char> held_back_;
  tls_stream stream_;
};

rw_state tls_policy::after(bool was_handshaking, io_status s) {
  if (was_handshaking && !session_->handshaking() && s != io_status::failed)
    owner_->handshake_done();
  return to_rw_state(s);
}

class tls_doorman : public net::doorman_impl {
public:
  tls_doorman(net::default_multiplexer& mpx, native_socket fd,
              std::shared_ptr<const tls_context> ctx)
    : net::doorman_impl(mpx, fd), ctx_(std::move(ctx)) {
  }

  bool new_connection() override {
    // Detached from its broker while the multiplexer still polled it.
    if (detached())
      return false;
    auto& mpx = acceptor_.backend();
    auto fd = acceptor_.accepted_socket();
    caf::detail::socket_guard guard{fd};
    net::nonblocking(fd, true);
    auto peer = peer_of(fd);
    auto s = std::make_unique<session>(ctx_, fd, role::accept, peer);
    if (!s->valid()) {
      ctx_->failed(peer, "cannot make a TLS session");
      return false;
    }
    auto scribe = caf::make_counted<tls_scribe>(mpx, fd, std::move(s));
    guard.release(); // the scribe owns the socket now
    auto hdl = scribe->hdl();
    parent()->add_scribe(std::move(scribe));
    return doorman::new_connection(&mpx, hdl);
  }

private:
  std::shared_ptr<const tls_context> ctx_;
};

class tls_middleman : public caf::io::middleman_actor_impl {
public:
  tls_middleman(caf::actor_config& cfg, caf::actor broker,
                std::shared_ptr<const tls_context> ctx)
    : caf::io::middleman_actor_impl(cfg, std::move(broker)),
      ctx_(std::move(ctx)) {
  }

  const char* name() const override { return "vb.tls_middleman"; }

protected:
  caf::expected<caf::io::scribe_ptr> connect(const std::string& host,
                                             uint16_t port) override {
    auto fd = net::new_tcp_connection(host, port);
    if (!fd)
      return std::move(fd.error());
    net::nonblocking(*fd, true);
    auto peer = peer_of(*fd);
    auto s = std::make_unique<session>(ctx_, *fd, role::connect, peer);
    if (!s->valid()) {
      net::close_socket(*fd);
      return caf::sec::cannot_connect_to_node;
    }
    return caf::make_counted<tls_scribe>(mpx(), *fd, std::move(s));
  }

  caf::expected<caf::io::doorman_ptr> open(uint16_t port, const char* addr,
                                           bool reuse) override {
    auto fd = net::new_tcp_acceptor_impl(port, addr, reuse);
    if (!fd)
      return std::move(fd.error());
    return caf::make_counted<tls_doorman>(mpx(), *fd, ctx_);
  }

private:
  net::default_multiplexer& mpx() {
    return static_cast<net::default_multiplexer&>(
      system().middleman().backend());
  }

  std::shared_ptr<const tls_context> ctx_;
};

} // namespace

std::unique_ptr<caf_transport>
caf_transport::start(caf::actor_system& sys, std::shared_ptr<const context> ctx) {
  auto broker = sys.middleman().named_broker<caf::io::basp_broker>(
    caf::atom("BASP"));
  auto actor = sys.spawn<tls_middleman, caf::detached + caf::hidden>(
    std::move(broker), std::move(ctx));
  return std::unique_ptr<caf_transport>{new caf_transport(sys, std::move(actor))};
}

caf_transport::caf_transport(caf::actor_system& sys,
                             caf::io::middleman_actor actor)
  : sys_(sys), actor_(std::move(actor)) {
}

caf_transport::~caf_transport() {
  caf::scoped_actor self{sys_, true};
  self->send_exit(actor_, caf::exit_reason::kill);
  self->wait_for(actor_);
}

} // namespace vb::tls
