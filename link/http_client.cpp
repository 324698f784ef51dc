#include "link/http_client.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "link/answer.hpp"
#include "model/call_once.hpp"
#include "model/url.hpp"

namespace vb {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;

// -- one request ----------------------------------------------------------------

namespace {

constexpr const char* user_agent = "voicebot-server";

http_result failure(std::string error) {
  http_result r;
  r.error = std::move(error);
  return r;
}

/// For error messages: at most 200 characters, control characters replaced.
std::string printable(std::string_view s) {
  std::string out(s.substr(0, 200));
  for (auto& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      c = '?';
  }
  if (s.size() > 200)
    out += "...";
  return out;
}

http_result client_stopped() {
  return failure("client stopped");
}

void report_completion_threw(const char* what) {
  if (what)
    spdlog::error("http client: a completion callback threw: {}", what);
  else
    spdlog::error("http client: a completion callback threw");
}

/// The caller's callback, called exactly once: if its request was dropped
/// when the io_context shut down, with "client stopped".
struct completion : call_once<http_result> {
  explicit completion(http_client::callback done)
    : call_once(std::move(done), client_stopped, report_completion_threw) {
  }
};

/// Idle keep-alive connections by "host:port", touched only on the pool's
/// own strand (no lock). A connection goes back after a complete response
/// that allows keep-alive; the next request to the same endpoint takes it.
/// One the provider closed meanwhile fails at once and the request is
/// retried on a new connection (see exchange::retry_fresh). A connection
/// idle for `idle_timeout` is closed: an endpoint that gets no more
/// requests (a provider that died or left) keeps no socket open.
class connection_pool : public std::enable_shared_from_this<connection_pool> {
public:
  static constexpr std::size_t max_idle_per_endpoint = 64;
  static constexpr std::size_t max_endpoints = 1024;
  static constexpr auto idle_timeout = std::chrono::seconds(30);

  explicit connection_pool(net::io_context& ioc)
    : strand_(net::make_strand(ioc)), timer_(strand_) {
  }

  /// Calls `then(optional<socket>)` on `ex` with an idle connection, if any.
  template <class Executor, class Handler>
  void take(std::string key, Executor ex, Handler then) {
    net::post(strand_, [self = shared_from_this(), key = std::move(key), ex,
                        then = std::move(then)]() mutable {
      std::optional<tcp::socket> found;
      if (auto i = self->idle_.find(key); i != self->idle_.end()) {
        found.emplace(std::move(i->second.back().sock));
        i->second.pop_back();
        if (i->second.empty())
          self->idle_.erase(i);
      }
      net::post(ex, [then = std::move(then), found = std::move(found)]() mutable {
        then(std::move(found));
      });
    });
  }

  /// Keeps a connection for the next request to `key` (or closes it when
  /// the pool is full).
  void give(std::string key, tcp::socket sock) {
    net::post(strand_, [self = shared_from_this(), key = std::move(key),
                        sock = std::move(sock)]() mutable {
      auto i = self->idle_.find(key);
      if (i == self->idle_.end() && self->idle_.size() >= max_endpoints)
        return; // sock closes here
      auto& list = self->idle_[key];
      if (list.size() < max_idle_per_endpoint)
        list.push_back(idle{std::move(sock), clock::now()});
      self->arm();
    });
  }

private:
  using clock = std::chrono::steady_clock;
  struct idle {
    tcp::socket sock;
    clock::time_point since;
  };

  /// On the strand: a sweep in a while, unless one is due already.
  void arm() {
    if (armed_)
      return;
    armed_ = true;
    timer_.expires_after(idle_timeout);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      self->armed_ = false;
      if (ec)
        return; // the client stops
      self->sweep();
    });
  }

  /// On the strand: closes the connections idle for idle_timeout.
  void sweep() {
    auto cutoff = clock::now() - idle_timeout;
    for (auto i = idle_.begin(); i != idle_.end();) {
      auto& list = i->second;
      // Oldest first: they went back in order.
      auto fresh = std::find_if(list.begin(), list.end(),
                                [&](const idle& x) { return x.since > cutoff; });
      list.erase(list.begin(), fresh); // closes them
      i = list.empty() ? idle_.erase(i) : std::next(i);
    }
    if (!idle_.empty())
      arm();
  }

  net::strand<net::io_context::executor_type> strand_;
  net::steady_timer timer_;
  bool armed_ = false;
  std::unordered_map<std::string, std::vector<idle>> idle_;
};

/// One request on its own strand and its own connection. Every handler holds
/// a shared_ptr to it, so it lives until its last operation ends (or until
/// the io_context drops the pending operations when the client stops).
class exchange : public std::enable_shared_from_this<exchange> {
public:
  using executor = net::strand<net::io_context::executor_type>;

  exchange(executor ex, std::shared_ptr<connection_pool> pool, url_parts url,
           bhttp::verb method, std::string body,
           std::chrono::steady_clock::time_point deadline, completion done)
    : pool_(std::move(pool)),
      resolver_(ex),
      resolve_timer_(ex),
      stream_(ex),
      deadline_(deadline),
      host_(std::move(url.host)),
      port_(std::move(url.port)),
      done_(std::move(done)) {
    req_.method(method);
    req_.target(url.target);
    req_.version(11);
    auto host_field = host_.find(':') == std::string::npos
                        ? host_
                        : "[" + host_ + "]";
    if (port_ != "80")
      host_field += ":" + port_;
    req_.set(bhttp::field::host, host_field);
    req_.set(bhttp::field::user_agent, user_agent);
    req_.set(bhttp::field::accept, "application/json");
    if (!body.empty())
      req_.set(bhttp::field::content_type, "application/json");
    req_.body() = std::move(body);
    req_.keep_alive(true);
    req_.prepare_payload();
    key_ = host_ + " " + port_;
    answer::set_limits(*parser_, method == bhttp::verb::head);
  }

  /// The request's strand.
  net::any_io_executor get_executor() {
    return stream_.get_executor();
  }

  /// Runs on the strand: an idle connection to the endpoint if there is
  /// one, else a new one.
  void start() {
    pool_->take(key_, get_executor(),
                [self = shared_from_this()](std::optional<tcp::socket> sock) {
                  if (self->phase_ != phase::resolving)
                    return;
                  if (!sock)
                    return self->start_fresh();
                  // The connection moves to this request's own socket.
                  beast::error_code ec;
                  auto protocol = sock->local_endpoint(ec).protocol();
                  if (!ec) {
                    auto fd = sock->release(ec);
                    if (!ec)
                      self->stream_.socket().assign(protocol, fd, ec);
                  }
                  if (ec)
                    return self->start_fresh();
                  self->reused_ = true;
                  self->phase_ = phase::exchanging;
                  self->stream_.expires_at(self->deadline_);
                  self->send();
                });
  }

private:
  /// Resolves and connects.
  void start_fresh() {
    // The stream's timer does not cover the resolver: a timer of our own
    // does, for the same deadline.
    resolve_timer_.expires_at(deadline_);
    resolve_timer_.async_wait(
      beast::bind_front_handler(&exchange::on_resolve_deadline,
                                shared_from_this()));
    resolver_.async_resolve(
      host_, port_, tcp::resolver::numeric_service,
      beast::bind_front_handler(&exchange::on_resolve, shared_from_this()));
  }

  /// A reused connection failed before any answer: the provider closed it
  /// while it was idle. Once, on a new connection.
  bool retry_fresh(const beast::error_code& ec) {
    if (!reused_ || got_bytes_ || std::chrono::steady_clock::now() >= deadline_)
      return false;
    if (ec == beast::error::timeout)
      return false;
    reused_ = false;
    beast::error_code ignored;
    stream_.socket().close(ignored);
    stream_.socket() = tcp::socket{stream_.get_executor()};
    buffer_.clear();
    parser_.emplace();
    answer::set_limits(*parser_, req_.method() == bhttp::verb::head);
    phase_ = phase::resolving;
    start_fresh();
    return true;
  }

  void on_resolve_deadline(beast::error_code ec) {
    if (ec || phase_ != phase::resolving)
      return; // cancelled, or the lookup finished first
    // Answer now; a lookup inside getaddrinfo ends on its own and is ignored.
    resolver_.cancel();
    finish(failure("timeout"));
  }

  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (phase_ != phase::resolving)
      return;
    resolve_timer_.cancel();
    if (ec)
      return fail(ec);
    phase_ = phase::exchanging;
    // One deadline for connect, write and read together.
    stream_.expires_at(deadline_);
    stream_.async_connect(
      results,
      beast::bind_front_handler(&exchange::on_connect, shared_from_this()));
  }

  void on_connect(beast::error_code ec, const tcp::endpoint&) {
    if (phase_ != phase::exchanging)
      return;
    if (ec)
      return fail(ec);
    beast::error_code ignored;
    stream_.socket().set_option(tcp::no_delay(true), ignored);
    send();
  }

  void send() {
    bhttp::async_write(
      stream_, req_,
      beast::bind_front_handler(&exchange::on_write, shared_from_this()));
  }

  /// Before any answer: a failure on a pooled connection is retried on a
  /// new one (once); other failures end the request. True when it failed.
  bool failed_before_answer(const beast::error_code& ec) {
    if (!ec)
      return false;
    if (!retry_fresh(ec))
      fail(ec);
    return true;
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (phase_ != phase::exchanging || failed_before_answer(ec))
      return;
    bhttp::async_read_header(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&exchange::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (phase_ != phase::exchanging || failed_before_answer(ec))
      return;
    got_bytes_ = true;
    if (auto why = answer::status_problem(*parser_); !why.empty())
      return finish(failure(std::move(why))); // and the connection closes
    bhttp::async_read(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&exchange::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (phase_ != phase::exchanging)
      return;
    if (ec)
      return fail(ec);
    // Nothing may follow the response on a connection that goes back.
    bool keep = parser_->get().keep_alive() && buffer_.size() == 0;
    finish(answer::result_of(*parser_), keep);
  }

  void fail(const beast::error_code& ec) {
    finish(failure(answer::describe(ec)));
  }

  void finish(http_result r, bool keep = false) {
    phase_ = phase::done;
    r.timed_out = r.error == "timeout";
    beast::error_code ignored;
    resolve_timer_.cancel();
    if (keep) {
      stream_.expires_never();
      pool_->give(key_, stream_.release_socket());
    } else {
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream_.close();
    }
    done_(std::move(r));
  }

  enum class phase { resolving, exchanging, done };

  std::shared_ptr<connection_pool> pool_;
  tcp::resolver resolver_;
  net::steady_timer resolve_timer_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  bhttp::request<bhttp::string_body> req_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_{
    std::in_place};
  std::string key_;
  bool reused_ = false;    // on a connection from the pool
  bool got_bytes_ = false; // a response header arrived
  std::chrono::steady_clock::time_point deadline_;
  std::string host_;
  std::string port_;
  phase phase_ = phase::resolving;
  completion done_;
};

} // namespace

// -- the client -----------------------------------------------------------------

struct http_client::impl {
  net::io_context ioc;
  net::executor_work_guard<net::io_context::executor_type> work{
    ioc.get_executor()};
  std::vector<std::thread> threads;
  std::shared_ptr<connection_pool> pool = std::make_shared<connection_pool>(ioc);

  /// Calls `done` with `error` from an I/O thread, never inline.
  void post_failure(completion done, std::string error) {
    net::post(ioc, [done = std::move(done), error = std::move(error)]() mutable {
      done(failure(std::move(error)));
    });
  }
};

http_client::http_client(unsigned threads) : impl_(std::make_unique<impl>()) {
  if (threads == 0)
    threads = 1;
  impl_->threads.reserve(threads);
  for (unsigned i = 0; i < threads; ++i)
    impl_->threads.emplace_back([ioc = &impl_->ioc] { ioc->run(); });
}

http_client::~http_client() {
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads)
    t.join();
  // Destroying the io_context (with impl_) destroys the operations it still
  // holds; the last one of each request destroys its exchange, whose
  // completion then reports "client stopped" on this thread.
  impl_.reset();
}

void http_client::request(std::string method, std::string url,
                          std::string body, std::chrono::milliseconds timeout,
                          callback done) {
  completion c(std::move(done));
  url_parts parts;
  if (parse_url(url, parts) != url_error::none)
    return impl_->post_failure(std::move(c), "bad url: " + printable(url));
  if (parts.scheme != "http")
    return impl_->post_failure(std::move(c),
                               "https providers are not supported");
  auto verb = bhttp::string_to_verb(method);
  if (verb == bhttp::verb::unknown)
    return impl_->post_failure(std::move(c),
                               "bad method: " + printable(method));
  // The deadline starts now, so time queued behind other work counts too.
  // Clamped to [0, 24 h] so that no addition overflows.
  timeout = std::clamp(timeout, std::chrono::milliseconds{0},
                       std::chrono::milliseconds{std::chrono::hours{24}});
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto ex = std::make_shared<exchange>(net::make_strand(impl_->ioc),
                                       impl_->pool, std::move(parts), verb,
                                       std::move(body),
                                       deadline, std::move(c));
  net::post(ex->get_executor(), [ex] { ex->start(); });
}

} // namespace vb
