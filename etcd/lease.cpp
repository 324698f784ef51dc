// Lease keepers: renewed every TTL/3, lost once a TTL passed unrenewed.
#include <algorithm>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "etcd/client_impl.hpp"

namespace vb::etcd {

std::optional<milliseconds> lease_status::since_renewal() const {
  auto ns = last_ok_ns_.load();
  if (ns == 0)
    return std::nullopt;
  auto now = clock_type::now().time_since_epoch();
  return std::chrono::duration_cast<milliseconds>(
    now - std::chrono::nanoseconds(ns));
}

/// Grants a lease, renews it every TTL/3, retries failed renewals until the
/// TTL has run out since the last success, then reports it lost.
class keeper_state : public std::enable_shared_from_this<keeper_state> {
public:
  keeper_state(impl& owner, uint64_t id, std::chrono::seconds ttl,
               std::function<void(int64_t)> on_granted,
               std::function<void(int64_t)> on_lost)
    : owner_(owner),
      id_(id),
      ttl_(std::max<int64_t>(1, ttl.count())),
      status_(std::make_shared<lease_status>()),
      on_granted_(std::move(on_granted)),
      on_lost_(std::move(on_lost)),
      renew_timer_(owner.ioc),
      expiry_timer_(owner.ioc) {
  }

  std::shared_ptr<const lease_status> status() const {
    return status_;
  }

  void start() {
    grant();
  }

  /// No more callbacks; revokes the lease when asked (best effort).
  void stop(bool revoke) {
    if (done_)
      return;
    done_ = true;
    renew_timer_.cancel();
    expiry_timer_.cancel();
    if (revoke && status_->id() != 0)
      owner_.call("/v3/lease/revoke", lease_id_json(status_->id()).dump(),
                  clock_type::now() + period(), once([](reply) {}));
  }

private:
  milliseconds period() const {
    return milliseconds(ttl_ * 1000 / 3);
  }

  milliseconds retry_delay() const {
    return std::min(milliseconds(ttl_ * 100), milliseconds(500));
  }

  void grant() {
    if (done_)
      return;
    auto sent = clock_type::now();
    owner_.call("/v3/lease/grant", lease_grant_json(ttl_).dump(),
                sent + period(),
                once([self = shared_from_this(), sent](reply r) {
                  self->on_grant(sent, std::move(r));
                }));
  }

  /// The answer to a grant sent at `sent`.
  void on_grant(clock_type::time_point sent, reply r) {
    if (r.error.kind == errc::client_stopped || done_)
      return;
    auto id = r.error ? 0 : lease_of(r.body).id;
    if (id == 0) {
      spdlog::warn("etcd client: lease grant failed: {}", r.error.message);
      return after(period(), &keeper_state::grant);
    }
    status_->id_ = id;
    renewed(sent);
    guarded(on_granted_, id);
  }

  void renew() {
    if (done_)
      return;
    auto sent = clock_type::now();
    auto expiry = last_ok_ + std::chrono::seconds(ttl_);
    owner_.call("/v3/lease/keepalive", lease_id_json(status_->id()).dump(),
                std::min(expiry, sent + period()),
                once([self = shared_from_this(), sent](reply r) {
                  self->on_keepalive(sent, std::move(r));
                }));
  }

  /// The answer to a keepalive sent at `sent`: TTL 0 means the lease is gone.
  void on_keepalive(clock_type::time_point sent, reply r) {
    if (r.error.kind == errc::client_stopped || done_)
      return;
    if (!r.error) {
      if (lease_of(r.body).ttl > 0)
        return renewed(sent);
      spdlog::warn("etcd client: lease {} is gone", status_->id());
      return lose();
    }
    spdlog::warn("etcd client: lease {} renewal failed: {}", status_->id(),
                 r.error.message);
    after(retry_delay(), &keeper_state::renew);
  }

  /// A grant or renewal sent at `sent` succeeded.
  void renewed(clock_type::time_point sent) {
    last_ok_ = sent;
    status_->last_ok_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             sent.time_since_epoch())
                             .count();
    expiry_timer_.expires_at(sent + std::chrono::seconds(ttl_));
    expiry_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec && !self->done_)
        self->lose();
    });
    after(period(), &keeper_state::renew);
  }

  void lose() {
    if (done_)
      return;
    done_ = true;
    status_->lost_ = true;
    renew_timer_.cancel();
    expiry_timer_.cancel();
    auto id = status_->id();
    spdlog::warn("etcd client: lease {} lost", id);
    owner_.keepers.erase(id_); // `this` lives on in the caller's shared_ptr
    guarded(on_lost_, id);
  }

  void after(milliseconds d, void (keeper_state::*step)()) {
    renew_timer_.expires_after(d);
    renew_timer_.async_wait(
      [self = shared_from_this(), step](beast::error_code ec) {
        if (!ec && !self->done_)
          ((*self).*step)();
      });
  }

  impl& owner_;
  uint64_t id_;
  int64_t ttl_;
  std::shared_ptr<lease_status> status_;
  std::function<void(int64_t)> on_granted_;
  std::function<void(int64_t)> on_lost_;
  net::steady_timer renew_timer_;
  net::steady_timer expiry_timer_;
  clock_type::time_point last_ok_;
  bool done_ = false;
};

std::pair<uint64_t, std::shared_ptr<const lease_status>>
etcd_client::keep_lease(std::chrono::seconds ttl,
                        std::function<void(int64_t)> on_granted,
                        std::function<void(int64_t)> on_lost) {
  static std::atomic<uint64_t> ids{1};
  auto id = ids++;
  auto k = std::make_shared<keeper_state>(*impl_, id, ttl, std::move(on_granted),
                                          std::move(on_lost));
  auto status = k->status();
  net::post(impl_->ioc, [i = impl_.get(), id, k] {
    i->keepers[id] = k;
    k->start();
  });
  return {id, status};
}

void etcd_client::stop_keeper(uint64_t id, bool revoke) {
  net::post(impl_->ioc, [i = impl_.get(), id, revoke] {
    auto k = i->keepers.find(id);
    if (k == i->keepers.end())
      return;
    k->second->stop(revoke);
    i->keepers.erase(k);
  });
}

} // namespace vb::etcd
