// Unary calls: one request, one answer, endpoints rotated within one deadline.
#include <algorithm>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "etcd/client_impl.hpp"
#include "link/round_trip.hpp"

namespace vb::etcd {

namespace bhttp = boost::beast::http;

namespace {

bool is_unavailable(const etcd_error& e) {
  return e.kind == errc::server && e.code == grpc::unavailable;
}

/// One unary call: attempts (each one round trip, link/round_trip.hpp) on
/// the endpoints in turn until one answers something other than
/// "unavailable", or the deadline.
class unary_call : public std::enable_shared_from_this<unary_call> {
public:
  unary_call(impl& owner, std::string path, std::string body,
             clock_type::time_point deadline, once done, bool resend,
             bool anonymous)
    : resend_(resend),
      anonymous_(anonymous),
      owner_(owner),
      path_(std::move(path)),
      body_(std::move(body)),
      deadline_(deadline),
      pause_(owner.ioc),
      done_(std::move(done)) {
  }

  void start() {
    if (!owner_.config_error.empty()) {
      reply r;
      r.error = {errc::bad_request, 0, 0, owner_.config_error};
      return done_(std::move(r));
    }
    index_ = owner_.current;
    attempt();
  }

private:
  void attempt() {
    auto now = clock_type::now();
    if (now >= deadline_) {
      reply r;
      r.error = {errc::unavailable, saw_unavailable_ ? grpc::unavailable : 0,
                 last_.http_status, "no endpoint answered: " + last_.message};
      return done_(std::move(r));
    }
    if (anonymous_)
      return send();
    owner_.with_token([self = shared_from_this()](const etcd_error& e) {
      if (e.kind == errc::unavailable)
        return self->next("authentication: " + e.message);
      if (e) {
        reply r;
        r.error = e;
        return self->done_(std::move(r));
      }
      self->send();
    });
  }

  /// One attempt on the current endpoint, on a kept connection if any.
  void send() {
    auto& ep = owner_.endpoints[index_];
    round_trip::request req;
    req.method(bhttp::verb::post);
    req.target(path_);
    req.version(11);
    req.set(bhttp::field::host, ep.host_field);
    req.set(bhttp::field::content_type, "application/json");
    token_ = anonymous_ ? std::string{} : owner_.auth->token;
    if (!token_.empty())
      req.set(bhttp::field::authorization, token_);
    req.body() = body_;
    req.keep_alive(true);
    req.prepare_payload();
    round_trip::peer to;
    to.addresses = ep.addresses;
    to.tls = ep.tls;
    // A write that must not apply twice is not sent again on a new
    // connection once written on a kept one.
    to.retry_kept = resend_;
    owner_.pool->take(
      ep.text, owner_.ioc.get_executor(),
      [self = shared_from_this(), to = std::move(to), req = std::move(req),
       key = ep.text](std::shared_ptr<round_trip::connection> kept) mutable {
        to.kept = std::move(kept);
        auto& owner = self->owner_;
        // Any status is read on: interpret() judges the answer.
        round_trip::reading rules{owner.options.max_body_bytes, nullptr};
        round_trip::start(
          owner.ioc.get_executor(), std::move(to), std::move(req), rules,
          std::min(self->deadline_,
                   clock_type::now() + owner.options.attempt_timeout),
          [self, key](round_trip::outcome o) {
            if (o.kept && !o.dropped)
              self->owner_.pool->give(key, std::move(o.kept));
            self->on_outcome(std::move(o));
          },
          report_callback_threw);
      });
  }

  void on_outcome(round_trip::outcome o) {
    if (o.dropped)
      return; // the client stops: done_ reports client_stopped
    sent_ = sent_ || o.sent;
    if (o.error == bhttp::error::body_limit) {
      reply r;
      r.error = {errc::bad_answer, 0, 0, "answer too large"};
      return done_(std::move(r));
    }
    if (o.at != round_trip::step::done && round_trip::is_tls_error(o.error)) {
      // A certificate or an alert: the settings are wrong, not the network.
      reply r;
      r.error = {errc::refused, 0, 0,
                 owner_.endpoints[index_].text + ": TLS "
                   + round_trip::to_string(o.at) + ": " + o.error.message()};
      return done_(std::move(r));
    }
    if (o.at != round_trip::step::done)
      return next(std::string(round_trip::to_string(o.at)) + ": "
                  + o.error.message());
    auto r = interpret(o.res.result_int(), o.res.body());
    if (r.error.kind == errc::server && r.error.code == grpc::unauthenticated
        && !token_.empty() && !renewed_) {
      // The token expired (or etcd restarted and forgot it): not applied,
      // so sent again with a new one, once.
      renewed_ = true;
      sent_ = false; // etcd refused it unapplied
      owner_.forget_token(token_);
      return attempt();
    }
    if (is_unavailable(r.error)) {
      last_ = r.error;
      saw_unavailable_ = true;
      return next("unavailable: " + r.error.message, true);
    }
    done_(std::move(r));
  }

  /// This endpoint failed: the next one (after a pause once all failed).
  /// `answered`: it answered code 14 (kept in last_ as the server's error).
  void next(std::string why, bool answered = false) {
    auto& ep = owner_.endpoints[index_];
    spdlog::debug("etcd client: {} {}: {}", ep.text, path_, why);
    if (!answered)
      last_ = {errc::unavailable, 0, 0, ep.text + ": " + why};
    if (sent_ && !resend_) {
      // It may have applied: never sent again (see impl::call).
      reply r;
      r.error = {errc::unavailable, saw_unavailable_ ? grpc::unavailable : 0,
                 last_.http_status,
                 "no answer, the outcome is unknown: " + last_.message};
      return done_(std::move(r));
    }
    auto n = owner_.endpoints.size();
    index_ = (index_ + 1) % n;
    owner_.current = index_;
    if (++tries_ % n != 0)
      return attempt();
    pause_.expires_at(
      std::min(deadline_, clock_type::now() + owner_.options.retry_pause));
    pause_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec)
        self->attempt();
    });
  }

  bool resend_ = true;
  bool anonymous_ = false; // no token (authenticate itself)
  bool renewed_ = false;   // sent again once with a new token
  std::string token_;      // the token of the attempt in flight
  bool sent_ = false; // the request was written on this attempt or before
  impl& owner_;
  std::string path_;
  std::string body_;
  clock_type::time_point deadline_;
  net::steady_timer pause_;
  std::size_t index_ = 0;
  std::size_t tries_ = 0;
  bool saw_unavailable_ = false; // an endpoint answered code 14
  etcd_error last_{errc::unavailable, 0, 0, "no attempt"};
  once done_;
};

clock_type::time_point deadline_of(milliseconds timeout) {
  timeout = std::clamp(timeout, milliseconds{0},
                       milliseconds{std::chrono::hours{24}});
  return clock_type::now() + timeout;
}

/// The caller's typed callback behind a reply: an error, or the decoded body.
template <class R, class Convert>
once typed(std::function<void(R)> done, Convert convert) {
  return once([done = std::move(done), convert](reply r) {
    R out;
    if (r.error)
      out.error = std::move(r.error);
    else
      out = convert(r.body);
    done(std::move(out));
  });
}

/// Whether a txn may be sent again: not when it writes under compares.
bool txn_resends(const txn_request& r) {
  // A conditional write is never sent twice: if its first attempt applied
  // unseen, the second would fail its own compares and report the write as
  // not done. Its caller settles the unknown outcome instead.
  bool writes = false;
  for (auto* ops : {&r.success, &r.failure})
    for (auto& op : *ops)
      writes = writes || op.op != txn_op::kind::range;
  return r.compares.empty() || !writes;
}

} // namespace

void etcd_client::impl::call(std::string path, std::string body,
                             clock_type::time_point deadline, once done,
                             bool resend, bool anonymous) {
  auto c = std::make_shared<unary_call>(*this, std::move(path), std::move(body),
                                        deadline, std::move(done), resend,
                                        anonymous);
  net::post(ioc, [c] { c->start(); });
}

// -- the client's unary calls -------------------------------------------------------

void etcd_client::range(range_request r, milliseconds timeout,
                        callback<range_result> done) {
  impl_->call("/v3/kv/range", range_json(r).dump(), deadline_of(timeout),
              typed(std::move(done), range_of));
}

void etcd_client::put(put_request r, milliseconds timeout,
                      callback<put_result> done) {
  impl_->call("/v3/kv/put", put_json(r).dump(), deadline_of(timeout),
              typed(std::move(done), put_of));
}

void etcd_client::delete_range(delete_request r, milliseconds timeout,
                               callback<delete_result> done) {
  impl_->call("/v3/kv/deleterange", delete_json(r).dump(), deadline_of(timeout),
              typed(std::move(done), delete_of));
}

void etcd_client::txn(txn_request r, milliseconds timeout,
                      callback<txn_result> done) {
  impl_->call("/v3/kv/txn", txn_json(r).dump(), deadline_of(timeout),
              typed(std::move(done), txn_of), txn_resends(r));
}

void etcd_client::lease_grant(int64_t ttl_seconds, milliseconds timeout,
                              callback<lease_result> done) {
  impl_->call("/v3/lease/grant", lease_grant_json(ttl_seconds).dump(),
              deadline_of(timeout), typed(std::move(done), lease_of));
}

void etcd_client::lease_revoke(int64_t id, milliseconds timeout,
                               callback<lease_result> done) {
  impl_->call("/v3/lease/revoke", lease_id_json(id).dump(),
              deadline_of(timeout), typed(std::move(done), lease_of));
}

void etcd_client::lease_keepalive(int64_t id, milliseconds timeout,
                                  callback<lease_result> done) {
  impl_->call("/v3/lease/keepalive", lease_id_json(id).dump(),
              deadline_of(timeout), typed(std::move(done), lease_of));
}

void etcd_client::lease_time_to_live(int64_t id, bool keys,
                                     milliseconds timeout,
                                     callback<lease_ttl_result> done) {
  impl_->call("/v3/lease/timetolive", lease_ttl_json(id, keys).dump(),
              deadline_of(timeout), typed(std::move(done), lease_ttl_of));
}

void etcd_client::status(milliseconds timeout, callback<status_result> done) {
  impl_->call("/v3/maintenance/status", "{}", deadline_of(timeout),
              typed(std::move(done), status_of));
}

void etcd_client::compact(int64_t revision, milliseconds timeout,
                          callback<put_result> done) {
  impl_->call("/v3/kv/compaction", compaction_json(revision).dump(),
              deadline_of(timeout), typed(std::move(done), compaction_of));
}

} // namespace vb::etcd
