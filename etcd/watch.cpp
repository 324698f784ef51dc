// Watches: one stream each, resumed elsewhere from the last revision seen.
#include <algorithm>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "etcd/client_impl.hpp"

namespace vb::etcd {

namespace bhttp = boost::beast::http;

/// One resumable watch: a streaming POST /v3/watch, reconnected (next
/// endpoint, backoff) from last_revision + 1 until cancelled or compacted.
class watch_state : public std::enable_shared_from_this<watch_state> {
public:
  watch_state(impl& owner, uint64_t id, watch_request r,
              etcd_client::watch_callback cb)
    : owner_(owner),
      id_(id),
      req_(std::move(r)),
      cb_(std::move(cb)),
      timer_(owner.ioc),
      backoff_(owner.options.watch_backoff) {
    if (req_.start_revision > 0) {
      last_revision_ = req_.start_revision - 1;
      have_revision_ = true;
    }
    index_ = owner_.current;
    on_chunk_ = [this](std::uint64_t, beast::string_view body,
                       beast::error_code& ec) -> std::size_t {
      feed(body, ec);
      return body.size();
    };
  }

  void start() {
    if (!owner_.config_error.empty()) {
      watch_update u;
      u.what = watch_update::kind::broken;
      u.message = owner_.config_error;
      return guarded(cb_, u);
    }
    connect();
  }

  void cancel() {
    ended_ = true;
    timer_.cancel();
    if (conn_)
      conn_->close();
  }

private:
  /// An I/O step's handler: on to `step`, or a broken stream named `what`.
  auto go_on(const char* what, void (watch_state::*step)()) {
    return [self = shared_from_this(), what, step](beast::error_code ec,
                                                   const auto&) {
      if (self->ended_)
        return;
      if (ec)
        return self->broken(what + (": " + ec.message()));
      ((*self).*step)();
    };
  }

  void connect() {
    if (ended_ || owner_.stopping)
      return;
    owner_.with_token([self = shared_from_this()](const etcd_error& e) {
      if (self->ended_ || self->owner_.stopping)
        return;
      if (e)
        return self->broken("authentication: " + e.message);
      self->open();
    });
  }

  void open() {
    auto& ep = owner_.endpoints[index_];
    auto from = have_revision_ ? std::optional<int64_t>(last_revision_ + 1)
                               : std::nullopt;
    conn_ = std::make_shared<round_trip::connection>(owner_.ioc.get_executor(),
                                                     ep.tls);
    parser_.emplace();
    parser_->body_limit(boost::none);
    parser_->on_chunk_body(on_chunk_);
    buffer_.clear();
    pending_.clear();
    http_req_ = {};
    http_req_.method(bhttp::verb::post);
    http_req_.target("/v3/watch");
    http_req_.version(11);
    http_req_.set(bhttp::field::host, ep.host_field);
    http_req_.set(bhttp::field::content_type, "application/json");
    // Without it a member that lost quorum keeps the stream silent (§6.8).
    http_req_.set("Grpc-Metadata-hasleader", "true");
    token_ = owner_.auth->token;
    if (!token_.empty())
      http_req_.set(bhttp::field::authorization, token_);
    http_req_.body() = watch_create_json(req_, from).dump();
    http_req_.prepare_payload();
    // Connect, handshake, write and header are bounded; the stream is not.
    conn_->tcp().expires_after(owner_.options.attempt_timeout);
    conn_->open(ep.addresses, [self = shared_from_this()](beast::error_code ec,
                                                          bool handshake) {
      self->go_on(handshake ? "TLS handshake" : "connect",
                  &watch_state::write_request)(ec, 0);
    });
  }

  void write_request() {
    conn_->with([&](auto& s) {
      bhttp::async_write(s, http_req_,
                         go_on("write", &watch_state::read_header));
    });
  }

  void read_header() {
    conn_->with([&](auto& s) {
      bhttp::async_read_header(s, buffer_, *parser_,
                               go_on("read", &watch_state::read_stream));
    });
  }

  /// The header is in: a 200 streams messages until the stream ends.
  void read_stream() {
    auto status = parser_->get().result_int();
    if (status != 200)
      return broken("HTTP " + std::to_string(status));
    conn_->tcp().expires_never();
    conn_->with([&](auto& s) {
      bhttp::async_read(
        s, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) {
          self->on_stream_end(ec);
        });
    });
  }

  /// The read of the body ended: a cut stream, or feed() stopped it.
  void on_stream_end(beast::error_code ec) {
    if (ended_)
      return;
    if (reconnect_why_.empty())
      reconnect_why_ = ec ? "stream: " + ec.message() : "stream ended";
    broken(reconnect_why_);
  }

  /// Bytes of the stream: whole lines are messages; the rest waits.
  void feed(beast::string_view body, beast::error_code& ec) {
    pending_.append(body.data(), body.size());
    std::size_t start = 0;
    for (;;) {
      auto nl = pending_.find('\n', start);
      if (nl == std::string::npos)
        break;
      auto line = pending_.substr(start, nl - start);
      start = nl + 1;
      if (!on_line(line)) {
        // Stop reading: the completion of async_read reconnects or ends.
        ec = net::error::operation_aborted;
        pending_.clear();
        return;
      }
    }
    pending_.erase(0, start);
    if (pending_.size() > owner_.options.max_body_bytes) {
      reconnect_why_ = "message too large";
      ec = net::error::operation_aborted;
      pending_.clear();
    }
  }

  /// One message; false when the stream must stop.
  bool on_line(const std::string& line) {
    if (ended_)
      return false;
    auto m = watch_line_of(line);
    switch (m.what) {
      case watch_line::kind::skip:
        return true;
      case watch_line::kind::reconnect:
        if (m.why.find("auth token") != std::string::npos)
          owner_.forget_token(token_); // asked for again on reconnecting
        reconnect_why_ = std::move(m.why);
        return false;
      case watch_line::kind::update:
        break;
    }
    return on_update(m.update);
  }

  /// Keeps the revision to resume from, then tells; false: stop the stream.
  bool on_update(const watch_update& u) {
    switch (u.what) {
      case watch_update::kind::compacted:
        ended_ = true;
        owner_.watches.erase(id_);
        guarded(cb_, u);
        return false;
      case watch_update::kind::created:
        backoff_ = owner_.options.watch_backoff;
        if (!have_revision_) {
          last_revision_ = u.revision;
          have_revision_ = true;
        }
        break;
      case watch_update::kind::events:
        for (auto& ev : u.events) {
          last_revision_ = std::max(last_revision_, ev.kv.mod_revision);
          have_revision_ = true;
        }
        break;
      case watch_update::kind::progress:
        if (u.revision > last_revision_) {
          last_revision_ = u.revision;
          have_revision_ = true;
        }
        break;
      case watch_update::kind::broken:
        break; // never read from a line: broken() says it
    }
    guarded(cb_, u);
    return !ended_;
  }

  /// The stream is gone: tell, then the next endpoint after a backoff.
  void broken(std::string why) {
    if (ended_ || owner_.stopping)
      return;
    if (conn_)
      conn_->close();
    pending_.clear(); // a half line is never delivered
    reconnect_why_.clear();
    auto& ep = owner_.endpoints[index_];
    spdlog::info("etcd client: watch on {} broke: {}", ep.text, why);
    watch_update u;
    u.what = watch_update::kind::broken;
    u.revision = last_revision_;
    u.message = ep.text + ": " + why;
    guarded(cb_, u);
    if (ended_)
      return;
    index_ = (index_ + 1) % owner_.endpoints.size();
    timer_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, owner_.options.watch_backoff_max);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec)
        self->connect();
    });
  }

  impl& owner_;
  uint64_t id_;
  watch_request req_;
  etcd_client::watch_callback cb_;
  net::steady_timer timer_;
  milliseconds backoff_;
  std::size_t index_ = 0;
  int64_t last_revision_ = 0;
  bool have_revision_ = false;
  bool ended_ = false;
  std::string reconnect_why_;
  std::string pending_;
  std::function<std::size_t(std::uint64_t, beast::string_view,
                            beast::error_code&)>
    on_chunk_;
  std::shared_ptr<round_trip::connection> conn_;
  std::string token_; // the token the stream was opened with
  beast::flat_buffer buffer_;
  bhttp::request<bhttp::string_body> http_req_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
};

uint64_t etcd_client::watch(watch_request r, watch_callback on_update) {
  static std::atomic<uint64_t> ids{1};
  auto id = ids++;
  net::post(impl_->ioc, [i = impl_.get(), id, r = std::move(r),
                         cb = std::move(on_update)]() mutable {
    auto w = std::make_shared<watch_state>(*i, id, std::move(r), std::move(cb));
    i->watches[id] = w;
    w->start();
  });
  return id;
}

void etcd_client::cancel_watch(uint64_t id) {
  net::post(impl_->ioc, [i = impl_.get(), id] {
    auto w = i->watches.find(id);
    if (w == i->watches.end())
      return;
    w->second->cancel();
    i->watches.erase(w);
  });
}

} // namespace vb::etcd
