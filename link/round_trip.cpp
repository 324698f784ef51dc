// One HTTP/1.1 round trip: see round_trip.hpp.
#include "link/round_trip.hpp"

#include <memory>
#include <utility>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "model/call_once.hpp"

namespace vb::round_trip {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using clock_type = std::chrono::steady_clock;

void prepare(response_parser& p, const reading& rules, bool head_request) {
  p.body_limit(rules.body_limit);
  if (head_request)
    p.skip(true); // a HEAD response has headers only
}

std::string refusal(const reading& rules, const response_parser& p) {
  return rules.refuse ? rules.refuse(p) : std::string();
}

bool reusable(const response_parser& p, std::size_t unread) {
  // Nothing may follow the answer on a connection that goes back.
  return p.get().keep_alive() && unread == 0;
}

std::string host_field(std::string_view host, std::string_view port,
                       std::string_view default_port) {
  std::string out;
  if (host.find(':') == std::string_view::npos)
    out = host;
  else
    out.append("[").append(host).append("]");
  if (port != default_port)
    out.append(":").append(port);
  return out;
}

const char* to_string(step x) {
  switch (x) {
    case step::resolve:
      return "resolve";
    case step::connect:
      return "connect";
    case step::handshake:
      return "handshake";
    case step::write:
      return "write";
    case step::read:
      return "read";
    case step::done:
      return "done";
  }
  return "?";
}

namespace {

outcome dropped() {
  outcome o;
  o.dropped = true;
  return o;
}

/// One round trip on its own connection. Every handler holds a shared_ptr
/// to it, so it lives until its last operation ends (or until the
/// io_context drops the pending operations, which reports it dropped).
class trip : public std::enable_shared_from_this<trip> {
public:
  trip(net::any_io_executor ex, peer to, request req, reading rules,
       clock_type::time_point deadline, handler done, threw_fn threw)
    : ex_(ex),
      resolver_(ex),
      resolve_timer_(ex),
      to_(std::move(to)),
      req_(std::move(req)),
      rules_(rules),
      deadline_(deadline),
      done_(std::move(done), dropped, threw) {
    prepare(*parser_, rules_, req_.method() == bhttp::verb::head);
  }

  void start() {
    if (auto kept = std::exchange(to_.kept, nullptr))
      conn_ = kept->on(ex_, kept);
    if (!conn_)
      return start_fresh();
    reused_ = true;
    phase_ = phase::exchanging;
    conn_->tcp().expires_at(deadline_);
    send();
  }

private:
  /// Resolves (unless the addresses are known) and connects.
  void start_fresh() {
    conn_ = std::make_shared<connection>(ex_, to_.tls);
    if (!to_.addresses.empty())
      return connect(to_.addresses);
    // The stream's timer does not cover the resolver: a timer of our own
    // does, for the same deadline.
    resolve_timer_.expires_at(deadline_);
    resolve_timer_.async_wait(
      beast::bind_front_handler(&trip::on_resolve_deadline, shared_from_this()));
    resolver_.async_resolve(
      to_.host, to_.port, tcp::resolver::numeric_service,
      beast::bind_front_handler(&trip::on_resolve, shared_from_this()));
  }

  /// A kept connection failed before any answer: the server closed it
  /// while it was idle. Once, on a new connection.
  bool retry_fresh(const beast::error_code& ec) {
    if (!reused_ || got_header_ || clock_type::now() >= deadline_)
      return false;
    if (ec == beast::error::timeout || (sent_ && !to_.retry_kept))
      return false;
    reused_ = false;
    conn_->close();
    buffer_.clear();
    parser_.emplace();
    prepare(*parser_, rules_, req_.method() == bhttp::verb::head);
    phase_ = phase::resolving;
    start_fresh();
    return true;
  }

  void on_resolve_deadline(beast::error_code ec) {
    if (ec || phase_ != phase::resolving)
      return; // cancelled, or the lookup finished first
    // Answer now; a lookup inside getaddrinfo ends on its own and is ignored.
    resolver_.cancel();
    fail(step::resolve, beast::error::timeout);
  }

  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (phase_ != phase::resolving)
      return;
    resolve_timer_.cancel();
    if (ec)
      return fail(step::resolve, ec);
    connect(results);
  }

  void connect(const tcp::resolver::results_type& addresses) {
    phase_ = phase::exchanging;
    // One deadline for connect, handshake, write and read together.
    conn_->tcp().expires_at(deadline_);
    conn_->open(addresses, [self = shared_from_this()](beast::error_code ec,
                                                       bool handshake) {
      self->on_open(ec, handshake);
    });
  }

  void on_open(beast::error_code ec, bool handshake) {
    if (phase_ != phase::exchanging)
      return;
    if (ec)
      return fail(handshake ? step::handshake : step::connect, ec);
    send();
  }

  void send() {
    conn_->with([&](auto& s) {
      bhttp::async_write(
        s, req_, beast::bind_front_handler(&trip::on_write, shared_from_this()));
    });
  }

  /// Before any answer: a failure on a kept connection is retried on a new
  /// one (once); other failures end the round trip. True when it failed.
  bool failed_before_answer(step at, const beast::error_code& ec) {
    if (!ec)
      return false;
    if (!retry_fresh(ec))
      fail(at, ec);
    return true;
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (phase_ != phase::exchanging || failed_before_answer(step::write, ec))
      return;
    sent_ = true;
    conn_->with([&](auto& s) {
      bhttp::async_read_header(
        s, buffer_, *parser_,
        beast::bind_front_handler(&trip::on_header, shared_from_this()));
    });
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (phase_ != phase::exchanging || failed_before_answer(step::read, ec))
      return;
    got_header_ = true;
    if (auto why = refusal(rules_, *parser_); !why.empty()) {
      outcome o;
      o.at = step::read;
      o.refused = std::move(why);
      return finish(std::move(o)); // and the connection closes
    }
    conn_->with([&](auto& s) {
      bhttp::async_read(
        s, buffer_, *parser_,
        beast::bind_front_handler(&trip::on_read, shared_from_this()));
    });
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (phase_ != phase::exchanging)
      return;
    if (ec)
      return fail(step::read, ec);
    bool keep = req_.keep_alive() && reusable(*parser_, buffer_.size());
    outcome o;
    o.at = step::done;
    o.res = parser_->release();
    finish(std::move(o), keep);
  }

  void fail(step at, const beast::error_code& ec) {
    outcome o;
    o.at = at;
    o.error = ec;
    finish(std::move(o));
  }

  void finish(outcome o, bool keep = false) {
    phase_ = phase::done;
    o.sent = sent_;
    resolve_timer_.cancel();
    if (conn_) {
      if (keep) {
        conn_->tcp().expires_never();
        o.kept = std::move(conn_);
      } else {
        conn_->close();
      }
    }
    done_(std::move(o));
  }

  enum class phase { resolving, exchanging, done };

  net::any_io_executor ex_;
  tcp::resolver resolver_;
  net::steady_timer resolve_timer_;
  std::shared_ptr<connection> conn_;
  beast::flat_buffer buffer_;
  peer to_;
  request req_;
  reading rules_;
  std::optional<response_parser> parser_{std::in_place};
  clock_type::time_point deadline_;
  phase phase_ = phase::resolving;
  bool reused_ = false;     // on a kept connection
  bool got_header_ = false; // an answer's header arrived
  bool sent_ = false;       // the whole request was written
  call_once<outcome> done_;
};

} // namespace

void start(net::any_io_executor ex, peer to, request req, reading rules,
           clock_type::time_point deadline, handler done, threw_fn threw) {
  auto t = std::make_shared<trip>(std::move(ex), std::move(to), std::move(req),
                                  rules, deadline, std::move(done), threw);
  t->start();
}

} // namespace vb::round_trip
