// The etcd store's reservations of joins' names (claims_actor, design
// §4.3): reserve before a dispatch, take over a stale one, give it back.
#include <unordered_set>
#include <utility>

#include <spdlog/spdlog.h>

#include "cluster/store_state.hpp"
#include "model/clock.hpp"

namespace vb::cluster_detail {

void etcd_store_state::reserve(uint64_t id) {
  reserve_queue.push_back(id);
  if (reserve_txn == 0)
    send_reservations();
}

void etcd_store_state::send_reservations() {
  // Up to this many names a transaction: each takes a compare, a put and a
  // read, within etcd's --max-txn-ops (128).
  constexpr std::size_t max_batch = 32;
  reserve_batch.clear();
  std::unordered_set<std::string> keys; // etcd refuses a key twice in a txn
  std::deque<uint64_t> later;
  while (!reserve_queue.empty()) {
    auto id = reserve_queue.front();
    reserve_queue.pop_front();
    auto i = reserving.find(id);
    if (i == reserving.end())
      continue;
    auto& job = i->second;
    if (!ctx->writable()) {
      job.rp.deliver(make_error(ec::storage_failed,
                                "cluster store: etcd is unavailable or this "
                                "instance holds no live lease (retry later)"));
      reserving.erase(i);
      continue;
    }
    bool alone = job.solo;
    if (reserve_batch.size() >= max_batch || keys.count(job.key) > 0
        || (alone && !reserve_batch.empty())) {
      later.push_back(id);
      continue;
    }
    keys.insert(job.key);
    reserve_batch.push_back(id);
    if (alone)
      break;
  }
  for (auto i = later.rbegin(); i != later.rend(); ++i)
    reserve_queue.push_front(*i);
  if (reserve_batch.empty())
    return;
  etcd::txn_request t;
  for (auto id : reserve_batch) {
    auto& job = reserving.at(id);
    job.solo = false;
    if (job.takeover != 0)
      t.compares.push_back({job.key, etcd::compare_target::mod,
                            etcd::compare_result::equal, {}, job.takeover});
    else
      t.compares.push_back({job.key, etcd::compare_target::create,
                            etcd::compare_result::equal, {}, 0});
    job.value = reservation_value(*ctx, job.session_id);
    etcd::put_request p;
    p.key = job.key;
    p.value = job.value;
    p.lease = ctx->lease.load();
    t.success.push_back(etcd::txn_op::make(std::move(p)));
    etcd::range_request r;
    r.key = job.key;
    t.failure.push_back(etcd::txn_op::make(std::move(r)));
  }
  // Under this instance's live lease only (the names' compares first).
  t.compares.push_back({ctx->instance_key(), etcd::compare_target::lease,
                        etcd::compare_result::equal, {}, ctx->lease.load()});
  auto me = caf::actor_cast<etcd_store_actor>(self);
  auto txn = reserve_txn = ++next_job;
  ctx->client->txn(std::move(t), txn_timeout, [me, txn](etcd::txn_result res) {
    caf::anon_send(me, reserve_done{txn, std::move(res)});
  });
}

void etcd_store_state::reserved(reserve_done& d) {
  if (d.job != reserve_txn)
    return;
  reserve_txn = 0;
  auto batch = std::exchange(reserve_batch, {});
  auto& r = d.result;
  if (!r.error && !r.succeeded && batch.size() > 1) {
    // A condition failed: each name again on its own, so that one taken
    // name fails (or waits for) only its own join.
    for (auto i = batch.rbegin(); i != batch.rend(); ++i)
      if (auto j = reserving.find(*i); j != reserving.end()) {
        j->second.solo = true;
        reserve_queue.push_front(*i);
      }
  } else {
    for (std::size_t k = 0; k < batch.size(); ++k)
      settle_reservation(batch[k], r, k);
  }
  if (reserve_txn == 0 && !reserve_queue.empty())
    send_reservations();
}

void etcd_store_state::settle_reservation(uint64_t id,
                                          const etcd::txn_result& r,
                                          std::size_t index) {
  auto i = reserving.find(id);
  if (i == reserving.end())
    return;
  auto& job = i->second;
  auto answer = [&](caf::expected<std::string> x) {
    if (x)
      job.rp.deliver(std::move(*x));
    else
      job.rp.deliver(x.error());
    reserving.erase(i);
  };
  if (r.error) {
    // It may have been applied all the same: given back, to be sure.
    held_names[job.key] = {job.session_id, job.value};
    release(job.key, job.session_id, 0, true);
    return answer(make_error(ec::storage_failed,
                             "cluster store: etcd did not take the join's "
                             "reservation: " + describe(r.error)));
  }
  if (r.succeeded) {
    held_names[job.key] = {job.session_id, job.value};
    return answer(std::string{});
  }
  // Alone in its transaction: its read says who holds the name.
  const etcd::key_value* kv = nullptr;
  if (index < r.responses.size() && !r.responses[index].range.kvs.empty())
    kv = &r.responses[index].range.kvs[0];
  if (kv == nullptr && job.takeover != 0) {
    // The holder gave the name back while we took it over: free now,
    // taken afresh.
    job.takeover = 0;
    return reserve(id);
  }
  if (kv == nullptr) {
    // No key, yet the compare of an absent one failed: only our lease
    // failed it (the name is free).
    return answer(make_error(ec::storage_failed,
                             "cluster store: this instance holds no live "
                             "lease (retry later)"));
  }
  auto v = json::parse(kv->value, nullptr, false);
  if (v.is_object() && v.value("state", "") == "joined" && v.contains("session"))
    return answer(v["session"].dump());
  if (v.is_object() && v.value("session_id", "") == job.session_id) {
    held_names[job.key] = {job.session_id, kv->value};
    return answer(std::string{}); // ours already
  }
  // A stale reservation is taken over: one of this instance for another
  // session (its lobby runs one join of a name at a time, so that join is
  // over), or anyone's past stale_reservation_s.
  double at = v.is_object() && v.contains("at") && v["at"].is_number()
                ? v["at"].get<double>()
                : 0;
  if (v.is_object()
      && (v.value("owner", "") == ctx->instance_id
          || unix_now() - at > stale_reservation_s)) {
    job.takeover = kv->mod_revision;
    return reserve(id);
  }
  job.takeover = 0;
  // Pending on another instance: wait for its commit, or for its
  // reservation to go (a failed dispatch, a lost lease).
  if (std::chrono::steady_clock::now() >= job.deadline)
    return answer(make_error(ec::storage_failed,
                             "cluster store: this bot and nick are being "
                             "joined on another instance (retry later)"));
  self->delayed_send(self, std::chrono::milliseconds(100), reserve_retry{id});
}

void etcd_store_state::release(const std::string& key,
                               const std::string& session_id, int attempt,
                               bool lingering) {
  auto h = held_names.find(key);
  if (h == held_names.end() || h->second.first != session_id)
    return; // not ours (any more)
  etcd::txn_request t;
  t.compares.push_back({key, etcd::compare_target::value,
                        etcd::compare_result::equal, h->second.second, 0});
  etcd::delete_request d;
  d.key = key;
  t.success.push_back(etcd::txn_op::make(std::move(d)));
  auto me = caf::actor_cast<etcd_store_actor>(self);
  ctx->client->txn(std::move(t), txn_timeout,
                   [me, key, session_id, attempt, lingering](etcd::txn_result r) {
                     caf::anon_send(me, release_done{key, session_id, attempt,
                                                     !r.error, r.succeeded,
                                                     lingering});
                   });
}

void etcd_store_state::released(const release_done& d) {
  if (!d.answered && d.attempt < 300) {
    self->delayed_send(self, std::chrono::seconds(1),
                       release_retry{d.key, d.session_id, d.attempt + 1,
                                     d.lingering});
    return;
  }
  if (d.answered && !d.deleted && d.lingering && d.attempt < 5) {
    // Nothing found yet: a reservation etcd did not answer may still
    // apply; looked for again at 1, 2, 4, 8 and 16 s.
    self->delayed_send(self, std::chrono::seconds(1 << d.attempt),
                       release_retry{d.key, d.session_id, d.attempt + 1,
                                     true});
    return;
  }
  if (auto h = held_names.find(d.key);
      h != held_names.end() && h->second.first == d.session_id)
    held_names.erase(h);
}

} // namespace vb::cluster_detail
