// The instance's membership: its lease, its key under instances/, the
// cleanup sweeper's election and /api/health's "store".

#include <spdlog/spdlog.h>

#include "cluster/internal.hpp"
#include "actors/stats.hpp"

namespace vb {

using namespace cluster_detail;

// -- membership -------------------------------------------------------------------

namespace {

/// The membership with the messages it sends itself (etcd's answers, its
/// timer).
using membership_self = membership_actor::extend<
  caf::reacts_to<lease_event>, caf::reacts_to<campaign_done>,
  caf::reacts_to<tick>>;

struct membership_state {
  static inline constexpr const char* name = "membership";

  membership_self::stateful_pointer<membership_state> self = nullptr;
  std::shared_ptr<cluster_context> ctx;
  std::shared_ptr<server_stats> stats;
  std::string info;
  uint64_t keeper = 0;
  /// The lease granted and not yet lost (its key may not be written yet).
  int64_t granted = 0;
  std::vector<caf::typed_response_promise<int64_t>> ready;
  /// Told when the lease is lost (fenced): it closes the provider links.
  dispatcher_actor dispatcher;
  bool leader = false;
  bool campaigning = false;
  bool was_writable = false;

  void keep() {
    auto me = caf::actor_cast<membership_self>(self);
    auto [id, status] = ctx->client->keep_lease(
      ctx->ttl,
      [me](int64_t lease) {
        caf::anon_send(me, lease_event{lease_event::kind::granted, lease, {}});
      },
      [me](int64_t lease) {
        caf::anon_send(me, lease_event{lease_event::kind::lost, lease, {}});
      });
    keeper = id;
    // Kept with the context: the stores read it through `status`.
    ctx->statuses.push_back(status);
    ctx->status = status.get();
  }

  void register_instance(int64_t lease) {
    etcd::put_request p;
    p.key = ctx->instance_key();
    p.value = info;
    p.lease = lease;
    auto me = caf::actor_cast<membership_self>(self);
    ctx->client->put(p, txn_timeout, [me, lease](etcd::put_result r) {
      caf::anon_send(me, lease_event{r.error
                                       ? lease_event::kind::register_failed
                                       : lease_event::kind::registered,
                                     lease, describe(r.error)});
    });
  }

  void on(lease_event& e) {
    switch (e.what) {
      case lease_event::kind::granted:
        granted = e.lease;
        register_instance(e.lease);
        break;
      case lease_event::kind::registered:
        if (e.lease != granted)
          return;
        ctx->lease = e.lease;
        spdlog::info("cluster: instance {} is live (lease {:x}, TTL {} s)",
                     ctx->instance_id, e.lease, ctx->ttl.count());
        for (auto& rp : ready)
          rp.deliver(e.lease);
        ready.clear();
        update();
        campaign();
        break;
      case lease_event::kind::register_failed:
        if (e.lease != granted)
          return;
        spdlog::warn("cluster: writing {} failed ({}); retrying",
                     ctx->instance_key(), e.message);
        self->delayed_send(self, milliseconds(500),
                           lease_event{lease_event::kind::granted, e.lease, {}});
        break;
      case lease_event::kind::lost:
        if (e.lease != granted)
          return;
        spdlog::error("cluster: lease {:x} lost (etcd unreachable for the "
                      "TTL): fenced, no commit until a new lease is live",
                      e.lease);
        granted = 0;
        ctx->lease = 0;
        leader = false;
        stats->sweeper = false;
        // Its providers go elsewhere now, not at the end of a partition:
        // this instance commits nothing for them until a new lease.
        if (dispatcher)
          self->send(dispatcher, atom::fenced_v);
        update();
        keep();
        break;
    }
  }

  /// Tries to become the sweeper (the key under our lease, if absent).
  void campaign() {
    auto lease = ctx->lease.load();
    if (leader || campaigning || lease == 0)
      return;
    campaigning = true;
    etcd::txn_request t;
    auto key = ctx->sweeper_key();
    t.compares.push_back(
      {key, etcd::compare_target::create, etcd::compare_result::equal, {}, 0});
    etcd::put_request p;
    p.key = key;
    p.value = ctx->instance_id;
    p.lease = lease;
    t.success.push_back(etcd::txn_op::make(p));
    etcd::range_request r;
    r.key = key;
    t.failure.push_back(etcd::txn_op::make(r));
    auto me = caf::actor_cast<membership_self>(self);
    auto iid = ctx->instance_id;
    ctx->client->txn(t, txn_timeout, [me, lease, iid](etcd::txn_result res) {
      campaign_done d;
      d.lease = lease;
      if (res.error) {
        d.message = describe(res.error);
      } else if (res.succeeded) {
        d.leader = true;
      } else if (!res.responses.empty()
                 && !res.responses[0].range.kvs.empty()) {
        auto& kv = res.responses[0].range.kvs[0];
        // Ours from before (the same lease): still ours.
        d.leader = kv.lease == lease && kv.value == iid;
      }
      caf::anon_send(me, d);
    });
  }

  void on(campaign_done& d) {
    campaigning = false;
    bool now = d.leader && d.lease == ctx->lease.load() && d.lease != 0;
    if (now != leader)
      spdlog::info("cluster: this instance {} the cleanup sweeper",
                   now ? "is now" : "is no longer");
    leader = now;
    stats->sweeper = leader;
  }

  /// /api/health's "store": a live lease and no commit failing for want of
  /// etcd since its last renewal.
  void update() {
    bool ok = ctx->writable();
    if (ok) {
      auto failed = ctx->failed_ns.load();
      auto* status = ctx->status.load();
      if (failed != 0 && status != nullptr && status->last_ok_ns_.load() < failed)
        ok = false;
    }
    auto* st = ctx->status.load();
    stats->store_fresh_until_ns
      = ok && st != nullptr
          ? st->last_ok_ns_.load()
              + std::chrono::duration_cast<std::chrono::nanoseconds>(ctx->ttl)
                    .count()
                  * 7 / 10
          : 0;
    stats->store = ok ? store_state::ok : store_state::unavailable;
    if (ok != was_writable)
      spdlog::info("cluster: the store is {}", ok ? "available" : "unavailable");
    was_writable = ok;
  }
};

membership_self::behavior_type
membership_fn(membership_self::stateful_pointer<membership_state> self,
                            std::shared_ptr<cluster_context> ctx,
                            std::shared_ptr<server_stats> stats,
                            std::string info) {
  auto& st = self->state;
  st.self = self;
  st.ctx = std::move(ctx);
  st.stats = std::move(stats);
  st.info = std::move(info);
  st.stats->sweeper = false;
  st.stats->store = store_state::unavailable;
  st.keep();
  auto period = std::max<milliseconds>(
    milliseconds(200), std::chrono::duration_cast<milliseconds>(st.ctx->ttl) / 10);
  self->delayed_send(self, period, tick{});
  self->attach_functor([ctx = st.ctx, self] {
    // A clean stop hands the instance key and the sweeper on at once.
    ctx->lease = 0;
    ctx->client->stop_keeper(self->state.keeper, true);
  });
  return {
    [=](lease_event& e) { self->state.on(e); },
    [=](campaign_done& d) { self->state.on(d); },
    [=](tick) {
      self->delayed_send(self, period, tick{});
      self->state.update();
      self->state.campaign();
    },
    [=](atom::peers, dispatcher_actor d) { self->state.dispatcher = std::move(d); },
    [=](atom::get) -> caf::result<int64_t> {
      auto lease = self->state.ctx->lease.load();
      if (lease != 0)
        return lease;
      auto rp = self->make_response_promise<int64_t>();
      self->state.ready.push_back(rp);
      return rp;
    },
  };
}


} // namespace

membership_actor spawn_membership(caf::actor_system& sys,
                                  std::shared_ptr<cluster_context> ctx,
                                  std::shared_ptr<server_stats> stats,
                                  std::string info) {
  return sys.spawn(membership_fn, std::move(ctx), std::move(stats),
                   std::move(info));
}

} // namespace vb
