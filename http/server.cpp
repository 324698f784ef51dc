#include "http/server.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <spdlog/spdlog.h>

#include "http/api.hpp"
#include "http/gate.hpp"
#include "http/lobby_socket.hpp"
#include "http/metrics.hpp"
#include "http/quota_keeper.hpp"
#include "http/request.hpp"
#include "http/routes.hpp"
#include "model/access_token.hpp"
#include "model/address.hpp"

namespace vb {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;

using acceptor_strand = net::any_io_executor;

namespace {

class connection;

/// Open HTTP connections per client address, so that one address cannot
/// take every slot. Touched on the acceptor's strand only: a connection
/// ending posts its decrement there. Shared, so that a connection outliving
/// the server finds it; once the I/O threads are stopped (`closed`),
/// nothing is posted any more.
struct address_counts {
  std::map<net::ip::address, std::size_t> open;
  std::atomic<bool> closed{false};

  /// Counts one more connection from `a` unless it has `cap` already.
  bool try_add(const net::ip::address& a, std::size_t cap) {
    auto& n = open[a];
    if (n >= cap)
      return false;
    ++n;
    return true;
  }

  void remove(const net::ip::address& a) {
    auto i = open.find(a);
    if (i != open.end() && --i->second == 0)
      open.erase(i);
  }

  /// Behind a trusted proxy, one connection carries many clients' requests
  /// in turn: the cap counts each forwarded client's requests in flight
  /// instead (as many as the connections it holds at the proxy).
  std::map<std::string, std::size_t, std::less<>> forwarded;

  bool try_add_forwarded(const std::string& client, std::size_t cap) {
    auto& n = forwarded[client];
    if (n >= cap)
      return false;
    ++n;
    return true;
  }

  void remove_forwarded(const std::string& client) {
    auto i = forwarded.find(client);
    if (i != forwarded.end() && --i->second == 0)
      forwarded.erase(i);
  }
};

/// The 16-byte form of a socket's address (model/address.hpp).
ip_bytes bytes_of(const net::ip::address& a) {
  ip_bytes out{};
  if (a.is_v4()) {
    auto v4 = a.to_v4().to_bytes();
    out[10] = 0xff;
    out[11] = 0xff;
    std::copy(v4.begin(), v4.end(), out.begin() + 12);
  } else {
    auto v6 = a.to_v6().to_bytes();
    std::copy(v6.begin(), v6.end(), out.begin());
  }
  return out;
}

} // namespace

// -- shared state of the front end ----------------------------------------------

struct http_server::impl {
  server_options opts;
  // Declared before the io_context: sessions still queued in it when it is
  // destroyed decrement its counters of connections and requests in flight.
  std::shared_ptr<http_metrics> metrics = std::make_shared<http_metrics>();
  std::shared_ptr<address_counts> per_address
    = std::make_shared<address_counts>();
  /// When a refusal past the per-address cap was last logged (acceptor
  /// strand only): a flood is logged once a second, not once a connection.
  std::chrono::steady_clock::time_point last_refusal_log;
  net::io_context ioc;
  // Declared after the io_context, so destroyed before it: its quota hook
  // holds a strand of the io_context, whose service must outlive it.
  std::optional<vb::api> api;
  /// On a strand of its own: accepts, and the list of connections below,
  /// are only touched there.
  std::optional<tcp::acceptor> acceptor;
  /// Every connection accepted (expired ones pruned now and then), so that
  /// a shutdown can tell each to drain. Acceptor strand only.
  std::vector<std::weak_ptr<connection>> live;
  /// Set once by stop(): answer what is in flight, then close.
  std::atomic<bool> draining{false};
  // Keeps the I/O threads running while requests are in flight, even when
  // no socket operation is pending (a reply still to come from an actor).
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration read_timeout;
  /// Never longer than read_timeout.
  std::chrono::steady_clock::duration header_timeout;
  std::chrono::steady_clock::duration write_timeout;
  /// --trusted-proxy: the peers whose X-Forwarded-For and -Proto count.
  std::vector<ip_prefix> trusted;

  explicit impl(server_options o) : opts(std::move(o)) {
    for (auto& t : opts.trusted_proxies)
      if (auto p = parse_address_prefix(t))
        trusted.push_back(*p);
    using clock_duration = std::chrono::steady_clock::duration;
    read_timeout = std::chrono::duration_cast<clock_duration>(
      std::chrono::duration<double>(opts.read_timeout));
    write_timeout = std::chrono::duration_cast<clock_duration>(
      std::chrono::duration<double>(opts.write_timeout));
    header_timeout = std::min(
      read_timeout, std::chrono::duration_cast<clock_duration>(
                      std::chrono::duration<double>(opts.header_timeout)));
  }

  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
  void drain_all();
};

// -- one connection -------------------------------------------------------------

namespace {

class connection : public std::enable_shared_from_this<connection> {
public:
  /// `proxied`: the peer is a trusted proxy, not counted per address at
  /// accept; its requests are counted per forwarded client instead.
  connection(tcp::socket&& socket, net::ip::address peer,
             http_server::impl& srv, bool proxied)
    : stream_(std::move(socket)), srv_(srv), metrics_(srv.metrics),
      per_address_(srv.per_address),
      acceptor_(srv.acceptor->get_executor()), peer_(std::move(peer)),
      proxied_(proxied), client_(peer_.to_string()) {
    ++metrics_->connections;
  }

  ~connection() {
    if (!per_address_->closed.load()) {
      if (!proxied_)
        net::post(acceptor_, [counts = per_address_, peer = peer_] {
          counts->remove(peer);
        });
      release_client();
    }
    --metrics_->connections;
  }

  /// At shutdown, on this connection's strand: a connection waiting for a
  /// next request that has not begun to arrive is closed; one that is
  /// receiving, handling or answering a request finishes it and closes
  /// after its response (which says Connection: close).
  void drain() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->reading_ || self->buffer_.size() > 0
          || (self->parser_ && self->parser_->got_some()))
        return;
      beast::error_code ec;
      if (self->stream_.socket().available(ec) > 0 && !ec)
        return; // a request's first bytes are here: it is read and answered
      self->stream_.cancel();
    });
  }

  void run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&connection::do_read,
                                            shared_from_this()));
  }

private:
  void do_read() {
    if (srv_.draining.load())
      return do_close();
    reading_ = true;
    parser_.emplace();
    limit(*parser_, srv_.opts);
    // Two deadlines: the header block within header_timeout (this is also
    // how long an idle keep-alive connection waits), the whole request
    // within read_timeout; a slow sender of either is cut off.
    request_deadline_ = std::chrono::steady_clock::now() + srv_.read_timeout;
    stream_.expires_after(srv_.header_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             beast::bind_front_handler(&connection::on_header,
                                                       shared_from_this()));
  }

  /// Answers an error of the parser, or closes when there is no one to
  /// answer; false when there is no error.
  bool read_failed(const beast::error_code& ec) {
    if (!ec)
      return false;
    reading_ = false;
    if (auto r = parse_failure(ec))
      fail(std::move(*r));
    else
      do_close();
    return true;
  }

  /// The header block is in: checks it (RFC 9112), answers Expect, and
  /// reads the body.
  void on_header(beast::error_code ec, std::size_t) {
    route_ = -1;
    if (read_failed(ec))
      return;
    if (auto r = header_refusal(*parser_)) {
      reading_ = false;
      return fail(std::move(*r));
    }
    if (parser_->is_done())
      return on_read({}, 0);
    auto& req = parser_->get();
    if (!req[bhttp::field::expect].empty() && req.version() >= 11) {
      // 100-continue (header_refusal refused any other expectation), and
      // the declared length is within the body limit (the parser refused
      // it with 413 already otherwise): ask for the body.
      static constexpr char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_at(request_deadline_);
      return net::async_write(
        stream_, net::buffer(cont, sizeof(cont) - 1),
        [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec)
            return self->read_failed(ec), void();
          self->read_body();
        });
    }
    read_body();
  }

  void read_body() {
    stream_.expires_at(request_deadline_);
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&connection::on_read,
                                                shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (read_failed(ec))
      return;
    reading_ = false;
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    http10_ = req.version() < 11;
    started_ = std::chrono::steady_clock::now();
    ++metrics_->in_flight;
    if (!proxied_)
      return handle(req);
    // From a trusted proxy: the client and scheme it names, and the
    // per-address cap for that client, counted on the acceptor's strand.
    std::string xff;
    auto [from, to] = req.equal_range(std::string_view{"X-Forwarded-For"});
    for (auto f = from; f != to; ++f)
      xff += (xff.empty() ? "" : ",") + std::string{f->value()};
    client_ = forwarded_client(xff, srv_.trusted).value_or(peer_.to_string());
    scheme_ = forwarded_scheme(req[std::string_view{"X-Forwarded-Proto"}])
                .value_or("http");
    if (per_address_->closed.load())
      return handle(req);
    net::post(acceptor_, [self = shared_from_this(), counts = per_address_,
                          client = client_,
                          cap = srv_.opts.max_connections_per_address] {
      auto admitted = counts->try_add_forwarded(client, cap);
      net::post(self->stream_.get_executor(), [self, admitted] {
        self->admit(admitted);
      });
    });
  }

  /// On the strand, with the forwarded client counted (or over its cap).
  void admit(bool admitted) {
    if (!admitted) {
      ++metrics_->refused_connections;
      auto r = api::error(429, "Too many connections from this address",
                          "too_many_connections");
      r.headers.emplace_back("Retry-After", "1");
      return write(std::move(r));
    }
    counted_client_ = client_;
    handle(parser_->get());
  }

  /// The forwarded client's count of this request, given back.
  void release_client() {
    if (counted_client_.empty())
      return;
    if (!per_address_->closed.load())
      net::post(acceptor_, [counts = per_address_, client = counted_client_] {
        counts->remove_forwarded(client);
      });
    counted_client_.clear();
  }

  /// Answers an unreadable request and closes the connection.
  void fail(api_reply r) {
    keep_alive_ = false;
    head_ = false;
    ++metrics_->in_flight;
    started_ = std::chrono::steady_clock::now();
    method_ = "-";
    target_ = "-";
    write(std::move(r));
  }

  void handle(request_t& req) {
    method_ = std::string{req.method_string()};
    auto target = std::string_view{req.target().data(), req.target().size()};
    // What the log shows: never a WebSocket's access token.
    target_ = redact_access_token(target);
    origin_ = std::string{req[bhttp::field::origin]};
    // HEAD is GET without the body (RFC 9110 §9.3.2).
    head_ = req.method() == bhttp::verb::head;
    std::string_view query;
    if (auto r = resolve_target(target, srv_.opts.base_path, path_, query))
      return write(std::move(*r));
    if (req.method() == bhttp::verb::options && !origin_.empty())
      return write(preflight(req));
    if (!head_ && boost::beast::websocket::is_upgrade(req)) {
      auto m = api_router().match("GET", path_);
      if (m.route && m.route->kind == route_kind::websocket)
        return upgrade(req, m.params.at(0), query);
    }
    // A reply from a CAF thread is posted to this connection's strand, the
    // only place that writes; one given inline (health, a validation error)
    // is written at once, on the strand already.
    handling_ = true;
    auto view = api_view(req, path_, query);
    view.client = client_;
    route_ = srv_.api->handle(
      view,
      [self = shared_from_this(), tid = std::this_thread::get_id()](api_reply r) {
        if (std::this_thread::get_id() == tid && self->handling_.load()) {
          self->write(std::move(r));
          return;
        }
        auto ex = self->stream_.get_executor();
        net::post(ex, [self, r = std::move(r)]() mutable {
          self->write(std::move(r));
        });
      });
    handling_ = false;
  }

  /// GET /ws/lobby/{id} with a WebSocket upgrade: once the lobby is known,
  /// the socket goes to a lobby socket (http/lobby_socket.cpp); an unknown
  /// lobby is an ordinary 404 answer.
  void upgrade(request_t& req, const std::string& lobby_id,
               std::string_view query) {
    // A page of another site may not open it (cross-site WebSocket use),
    // unless its origin is allowed for CORS.
    if (!origin_.empty() && !same_origin(req) && !origin_allowed())
      return write(api::error(403, "Origin not allowed", "origin_not_allowed"));
    // A frontend's access token, for the socket's hellos (and its reads).
    auto auth = req[bhttp::field::authorization];
    upgrade_token_ = socket_token({auth.data(), auth.size()}, query);
    if (auto r = socket_refusal(*srv_.api, upgrade_token_, lobby_id))
      return write(std::move(*r));
    lobby_id_ = lobby_id;
    srv_.api->find_lobby(
      lobby_id, [self = shared_from_this()](api_reply err, lobby_actor l) {
        net::post(self->stream_.get_executor(),
                  [self, err = std::move(err), l = std::move(l)]() mutable {
                    if (!l)
                      return self->write(std::move(err));
                    self->hand_over(std::move(l));
                  });
      });
  }

  /// On the strand: the connection becomes a WebSocket; this object ends.
  void hand_over(lobby_actor l) {
    --metrics_->in_flight;
    release_client();
    lobby_socket_limits limits;
    limits.voice = srv_.api->voice();
    limits.access = srv_.api->access();
    limits.metrics = metrics_;
    limits.lobby_id = std::move(lobby_id_);
    limits.upgrade_token = std::move(upgrade_token_);
    start_lobby_socket(std::move(stream_), parser_->release(), srv_.api->system(),
                       std::move(l), metrics_->connections,
                       metrics_->sockets, limits);
  }

  /// True when the Origin header names the host the request was sent to.
  bool same_origin(const request_t& req) const {
    auto host = req[bhttp::field::host];
    auto scheme_end = origin_.find("://");
    if (host.empty() || scheme_end == std::string::npos)
      return false;
    return std::string_view{origin_}.substr(scheme_end + 3)
           == std::string_view{host.data(), host.size()};
  }

  bool origin_allowed() const {
    if (origin_.empty())
      return false;
    for (auto& o : srv_.opts.cors_origins)
      if (o == "*" || o == origin_)
        return true;
    return false;
  }

  api_reply preflight(const request_t& req) {
    api_reply r{204, {}, {}, nullptr, {}};
    if (origin_allowed()) {
      r.headers.emplace_back("Access-Control-Allow-Methods",
                             "GET, POST, DELETE, OPTIONS");
      auto asked = req[bhttp::field::access_control_request_headers];
      r.headers.emplace_back("Access-Control-Allow-Headers",
                             asked.empty() ? std::string{"Content-Type"}
                                           : std::string{asked});
      r.headers.emplace_back("Access-Control-Max-Age", "600");
    }
    return r;
  }

  void write(api_reply r) {
    if (r.then)
      r.then();
    // Shutting down: this is the connection's last response.
    if (srv_.draining.load())
      keep_alive_ = false;
    response_flags flags{keep_alive_, http10_, head_,
                         origin_allowed() ? std::string_view{origin_}
                                          : std::string_view{}};
    if (r.shared_body) {
      // A cached listing: the body is written from the shared string.
      shared_body_ = std::move(r.shared_body);
      return send(span_res_, make_span_response(r, *shared_body_, flags));
    }
    send(res_, make_response(std::move(r), flags));
  }

  /// Writes a response on the strand; the next request is read only after
  /// it is written, so pipelined requests are answered in order. A reader
  /// too slow to take it within write_timeout is cut off.
  template <class Response>
  void send(std::optional<Response>& slot, Response&& res) {
    status_ = res.result_int();
    slot.emplace(std::move(res));
    stream_.expires_after(srv_.write_timeout);
    bhttp::async_write(stream_, *slot,
                       beast::bind_front_handler(&connection::on_write,
                                                 shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    auto took = std::chrono::steady_clock::now() - started_;
    auto ms = std::chrono::duration<double, std::milli>(took).count();
    if (ec) {
      // Not delivered: a reader too slow (write_timeout) or gone.
      ++metrics_->abandoned_responses;
      spdlog::warn("{} {} {} not delivered after {:.3f} ms: {}", method_,
                   target_, status_, ms,
                   ec == beast::error::timeout ? "write timeout"
                                               : ec.message());
    } else {
      metrics_->record(
        route_, status_,
        std::chrono::duration_cast<std::chrono::nanoseconds>(took));
      if (proxied_)
        spdlog::info("{} {} {} {:.3f} ms from {} via {} ({})", method_, target_,
                     status_, ms, client_, peer_.to_string(), scheme_);
      else
        spdlog::info("{} {} {} {:.3f} ms from {}", method_, target_, status_, ms,
                     client_);
    }
    release_client();
    --metrics_->in_flight;
    auto close = ec || !keep_alive_ || srv_.draining.load();
    res_.reset();
    span_res_.reset();
    shared_body_.reset();
    if (close)
      return do_close();
    do_read();
  }

  void do_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  http_server::impl& srv_;
  std::shared_ptr<http_metrics> metrics_;
  std::shared_ptr<address_counts> per_address_;
  /// Where per_address_ is counted.
  acceptor_strand acceptor_;
  /// The peer's address, counted in per_address_ while this is open
  /// (unless it is a trusted proxy).
  net::ip::address peer_;
  /// The peer is a trusted proxy (--trusted-proxy).
  bool proxied_ = false;
  /// The client: the peer, or for a trusted proxy the one X-Forwarded-For
  /// names (for the current request), and the scheme it was asked with.
  std::string client_;
  std::string scheme_ = "http";
  /// The forwarded client counted in per_address_ for the current request.
  std::string counted_client_;
  /// A WebSocket upgrade's lobby and frontend access token, for its hellos.
  std::string lobby_id_;
  std::string upgrade_token_;
  /// The whole request must be in by then (read_timeout).
  std::chrono::steady_clock::time_point request_deadline_;
  /// The current request is HEAD: answered as GET without the body.
  bool head_ = false;
  /// The current request is HTTP/1.0.
  bool http10_ = false;
  /// The current request's path as the API sees it (resolve_target).
  std::string path_;
  /// True while waiting for a request (between do_read and on_read).
  bool reading_ = false;
  /// The current request's route in route_table(); -1: none matched.
  int route_ = -1;
  beast::flat_buffer buffer_;
  std::optional<request_parser_t> parser_;
  std::optional<response_t> res_;
  std::optional<span_response_t> span_res_;
  std::shared_ptr<const std::string> shared_body_;
  unsigned status_ = 0;
  bool keep_alive_ = true;
  /// True while the API handles a request on this strand's thread.
  std::atomic<bool> handling_{false};
  std::chrono::steady_clock::time_point started_;
  std::string method_;
  std::string target_;
  std::string origin_;
};
} // namespace

void http_server::impl::do_accept() {
  acceptor->async_accept(net::make_strand(ioc),
                         beast::bind_front_handler(&impl::on_accept, this));
}

void http_server::impl::on_accept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor->is_open())
    return;
  if (!ec) {
    auto open = metrics->connections.load();
    beast::error_code peer_ec;
    auto peer = socket.remote_endpoint(peer_ec).address();
    if (open >= opts.max_connections) {
      ++metrics->refused_connections;
      spdlog::warn("connection refused: {} connections open (the cap)", open);
      beast::error_code ignored;
      socket.close(ignored);
    } else if (peer_ec
               || (!is_trusted(bytes_of(peer), trusted)
                   && !per_address->try_add(peer,
                                            opts.max_connections_per_address))) {
      ++metrics->refused_connections;
      auto now = std::chrono::steady_clock::now();
      if (!peer_ec && now - last_refusal_log >= std::chrono::seconds(1)) {
        last_refusal_log = now;
        spdlog::warn("connection refused: {} has {} connections open (the "
                     "per-address cap)",
                     peer.to_string(), opts.max_connections_per_address);
      }
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      socket.set_option(tcp::no_delay{true}, ec);
      auto c = std::make_shared<connection>(std::move(socket), peer, *this,
                                            is_trusted(bytes_of(peer), trusted));
      if (live.size() >= 2 * open + 64)
        live.erase(std::remove_if(live.begin(), live.end(),
                                  [](auto& w) { return w.expired(); }),
                   live.end());
      live.push_back(c);
      c->run();
    }
  }
  do_accept();
}

void http_server::impl::drain_all() {
  beast::error_code ec;
  if (acceptor)
    acceptor->close(ec);
  for (auto& w : live)
    if (auto c = w.lock())
      c->drain();
  live.clear();
}

// -- http_server ----------------------------------------------------------------

http_server::http_server(server_options opts)
  : impl_(std::make_unique<impl>(std::move(opts))) {
}

http_server::~http_server() {
  stop(0);
}

uint16_t http_server::bind() {
  auto& s = *impl_;
  auto addr = net::ip::make_address(s.opts.host);
  tcp::endpoint ep{addr, s.opts.port};
  s.acceptor.emplace(net::make_strand(s.ioc));
  s.acceptor->open(ep.protocol());
  s.acceptor->set_option(net::socket_base::reuse_address(true));
  s.acceptor->bind(ep);
  s.acceptor->listen(net::socket_base::max_listen_connections);
  return s.acceptor->local_endpoint().port();
}

void http_server::start(backend be) {
  auto& s = *impl_;
  // Per-client quotas on a strand of their own (none when both are 0).
  quota_hook quotas;
  quota_limits limits{s.opts.max_joins_per_client_per_minute,
                      s.opts.max_lobbies_per_client_per_hour};
  if (limits.joins_per_minute > 0 || limits.lobbies_per_hour > 0)
    quotas = make_quota_hook(s.ioc, limits);
  s.api.emplace(std::move(be), s.opts, s.metrics, std::move(quotas));
  s.work.emplace(s.ioc.get_executor());
  s.do_accept();
  auto n = s.opts.http_threads;
  if (n == 0)
    n = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i)
    s.threads.emplace_back([&s] { s.ioc.run(); });
}

void http_server::stop(int grace_ms) {
  auto& s = *impl_;
  if (s.threads.empty())
    return;
  s.draining = true;
  if (s.acceptor)
    net::post(s.acceptor->get_executor(), [&s] { s.drain_all(); });
  // Every connection closes once its request in flight is answered; idle
  // ones at once. What is left at the deadline is cut off.
  auto deadline = std::chrono::steady_clock::now()
                  + std::chrono::milliseconds(grace_ms);
  auto& m = *s.metrics;
  // Lobby WebSockets are not waited for: they end with the I/O threads.
  while ((m.in_flight.load() > 0 || m.connections.load() > m.sockets.load())
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (m.in_flight.load() > 0)
    spdlog::warn("shutdown: {} requests still in flight after {} ms; their "
                 "connections are closed",
                 m.in_flight.load(), grace_ms);
  s.work.reset();
  s.ioc.stop();
  for (auto& t : s.threads)
    t.join();
  s.threads.clear();
  // Connections destroyed from here on (with the io_context) post nothing.
  s.per_address->closed = true;
}

} // namespace vb
