// The owners' store seam (store_actor) on etcd: commits, the watch and
// resyncs (the reservations of joins' names are cluster/claims.cpp).
#include <algorithm>
#include <deque>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "cluster/store_state.hpp"
#include "actors/stats.hpp"
#include "model/clock.hpp"
#include "model/snapshot_codec.hpp"

namespace vb {

using namespace cluster_detail;

// -- the store: commits, the watch, resyncs ----------------------------------

namespace cluster_detail {

void etcd_store_state::enqueue(store_batch batch,
                               caf::typed_response_promise<uint64_t> rp,
                               bool has_rp) {
  queue.push_back(queued{std::move(batch), std::move(rp), has_rp, false});
  send_next();
}

void etcd_store_state::fail(std::vector<queued>& items,
                            const std::string& why) {
  // Counted before the answers go out (a reader may look at once).
  if (stats)
    stats->cluster_failures += items.size();
  for (auto& q : items)
    if (q.has_rp)
      q.rp.deliver(make_error(ec::storage_failed, "cluster store: " + why));
}

void etcd_store_state::send_next() {
  if (in_flight != 0 || queue.empty()) {
    settle();
    return;
  }
  if (!ctx->writable()) {
    std::vector<queued> items(std::make_move_iterator(queue.begin()),
                              std::make_move_iterator(queue.end()));
    queue.clear();
    fail(items, "etcd is unavailable or this instance holds no live lease "
                "(retry later)");
    settle();
    return;
  }
  etcd::txn_request txn;
  // The fence: the instance key still holds our live lease.
  txn.compares.push_back({ctx->instance_key(), etcd::compare_target::lease,
                          etcd::compare_result::equal, {},
                          ctx->lease.load()});
  // Later ops of a key replace earlier ones (etcd refuses a key twice in
  // one transaction); the order of first appearance is kept.
  std::vector<std::pair<std::string, std::shared_ptr<const std::string>>> ops;
  std::unordered_map<std::string, size_t> at;
  size_t bytes = 0;
  sent.clear();
  sent_keys.clear();
  committing_names.clear();
  leaving_members.clear();
  std::unordered_set<std::string> updated;
  while (!queue.empty()) {
    auto& next = queue.front();
    size_t n = 0;
    for (auto& c : next.batch)
      n += c.ops.size();
    // A batch alone past the limit goes in parts (heartbeat records only
    // grow so large; their order within the batch does not matter).
    if (!sent.empty()
        && (next.solo || ops.size() + n > max_txn_ops || bytes > max_txn_bytes))
      break;
    auto item = std::move(next);
    queue.pop_front();
    store_batch rest;
    for (auto& c : item.batch) {
      if (ops.size() >= max_txn_ops || bytes > max_txn_bytes) {
        rest.push_back(std::move(c));
        continue;
      }
      auto add = [&](std::string key, std::shared_ptr<const std::string> value) {
        bytes += key.size() + (value ? value->size() : 0);
        if (auto i = at.find(key); i != at.end()) {
          ops[i->second].second = std::move(value);
        } else {
          at.emplace(key, ops.size());
          ops.emplace_back(std::move(key), std::move(value));
        }
      };
      for (auto& op : c.ops) {
        auto key = cluster_key(prefix, op.parent, op.key);
        if (op.existing && updated.insert(key).second)
          txn.compares.push_back({key, etcd::compare_target::version,
                                  etcd::compare_result::greater, {}, 0});
        add(std::move(key), op_value(op));
      }
      for (auto& claim : c.claims) {
        auto key = claim_key(*ctx, claim.lobby_id, claim.bot_name, claim.nick);
        if (!claim.session) {
          // A leave gives the name back while its member is there: one
          // applied twice (a retry of a leave etcd did not answer, from an
          // instance that had not yet seen it) must not take the name from
          // the member holding it now.
          auto member = cluster_key(prefix, claim.lobby_id, claim.session_id);
          txn.compares.push_back({member, etcd::compare_target::version,
                                  etcd::compare_result::greater, {}, 0});
          leaving_members.push_back(member);
          add(std::move(key), nullptr);
          continue;
        }
        // A join commits its reservation, if it is still its own (a
        // value no reservation has when it is not).
        auto h = held_names.find(key);
        txn.compares.push_back(
          {key, etcd::compare_target::value, etcd::compare_result::equal,
           h != held_names.end() && h->second.first == claim.session_id
             ? h->second.second
             : std::string{"(not reserved here)"},
           0});
        committing_names.emplace_back(key, claim.session_id);
        add(std::move(key), std::make_shared<const std::string>(joined_value(
                              claim.session_id, *claim.session)));
      }
    }
    if (!rest.empty()) {
      // The promise goes with the last part.
      queue.push_front(
        queued{std::move(rest), std::move(item.rp), item.has_rp, item.solo});
      item.has_rp = false;
      sent.push_back(std::move(item));
      break;
    }
    bool solo = item.solo;
    sent.push_back(std::move(item));
    if (solo)
      break;
  }
  for (auto& [key, value] : ops) {
    sent_keys.insert(key);
    if (value) {
      etcd::put_request p;
      p.key = key;
      p.value = *value;
      txn.success.push_back(etcd::txn_op::make(std::move(p)));
    } else {
      etcd::delete_request d;
      d.key = key;
      txn.success.push_back(etcd::txn_op::make(std::move(d)));
    }
  }
  for (auto& member : leaving_members) {
    etcd::range_request r;
    r.key = member;
    txn.failure.push_back(etcd::txn_op::make(std::move(r)));
  }
  if (txn.success.empty()) {
    // Only empty batches (a flush): nothing to commit.
    for (auto& q : sent)
      if (q.has_rp)
        q.rp.deliver(static_cast<uint64_t>(last_rev));
    sent.clear();
    settle();
    return;
  }
  in_flight = ++next_txn;
  auto me = caf::actor_cast<etcd_store_actor>(self);
  auto id = in_flight;
  ctx->client->txn(std::move(txn), txn_timeout,
                   [me, id](etcd::txn_result r) {
                     caf::anon_send(me, txn_done{id, std::move(r)});
                   });
}

void etcd_store_state::committed(txn_done& d) {
  if (d.id != in_flight)
    return;
  in_flight = 0;
  auto& r = d.result;
  if (!r.error && !r.succeeded && sent.size() > 1) {
    // A condition of the shared transaction failed: each batch again on
    // its own, so that one lost reservation fails only its own join.
    for (auto i = sent.rbegin(); i != sent.rend(); ++i) {
      i->solo = true;
      queue.push_front(std::move(*i));
    }
    return next_after_commit();
  }
  if (!r.error && !r.succeeded && forget_left_names(r))
    return next_after_commit();
  if (r.error && !committing_names.empty()) {
    // etcd did not answer: the commit may still apply. Its joins' names
    // decide (design §4.6, indeterminate outcomes): see settle().
    if (r.error.kind == etcd::errc::unavailable)
      ctx->failed_ns = steady_ns();
    in_flight = d.id;
    return settle(d.id, 0);
  }
  finish_commit(r);
}

bool etcd_store_state::forget_left_names(const etcd::txn_result& r) {
  // A transaction of one batch (sent.size() == 1) whose leaves found their
  // members gone: those leaves are over already, and the names are no
  // longer theirs to give back. The rest goes again without them.
  std::unordered_set<std::string> gone;
  for (size_t i = 0; i < leaving_members.size() && i < r.responses.size(); ++i)
    if (r.responses[i].range.kvs.empty())
      gone.insert(leaving_members[i]);
  if (gone.empty() || sent.size() != 1)
    return false;
  for (auto& c : sent.front().batch)
    c.claims.erase(std::remove_if(c.claims.begin(), c.claims.end(),
                                  [&](const store_claim& claim) {
                                    return !claim.session
                                           && gone.count(cluster_key(
                                                prefix, claim.lobby_id,
                                                claim.session_id));
                                  }),
                   c.claims.end());
  sent.front().solo = true;
  queue.push_front(std::move(sent.front()));
  sent.clear();
  return true;
}

void etcd_store_state::settle(uint64_t id, int attempt) {
  auto [key, sid] = committing_names.front();
  auto h = held_names.find(key);
  if (h == held_names.end() || h->second.first != sid) {
    etcd::txn_result failed;
    failed.error.kind = etcd::errc::unavailable;
    failed.error.message = "the outcome is unknown";
    return finish_commit(failed);
  }
  etcd::txn_request t;
  t.compares.push_back({key, etcd::compare_target::value,
                        etcd::compare_result::equal, h->second.second, 0});
  auto taken_back = json::parse(h->second.second, nullptr, false);
  taken_back["taken_back"] = true;
  etcd::put_request p;
  p.key = key;
  p.value = taken_back.dump();
  p.lease = ctx->lease.load();
  t.success.push_back(etcd::txn_op::make(std::move(p)));
  etcd::range_request r;
  r.key = key;
  t.failure.push_back(etcd::txn_op::make(std::move(r)));
  auto me = caf::actor_cast<etcd_store_actor>(self);
  ctx->client->txn(std::move(t), txn_timeout,
                   [me, id, attempt](etcd::txn_result res) {
                     caf::anon_send(me, settle_done{id, attempt, std::move(res)});
                   });
}

void etcd_store_state::settled(settle_done& d) {
  if (d.id != in_flight)
    return;
  auto [key, sid] = committing_names.front();
  auto& r = d.result;
  auto h = held_names.find(key);
  if (r.error) {
    if (d.attempt < 20) {
      self->delayed_send(self, std::chrono::milliseconds(500),
                         settle_retry{d.id, d.attempt + 1});
      return;
    }
    etcd::txn_result failed;
    failed.error = r.error;
    failed.error.message = "the outcome is unknown: " + r.error.message;
    return finish_commit(failed);
  }
  if (r.succeeded) {
    // Taken back: the commit can never apply. The name is given back.
    if (h != held_names.end() && h->second.first == sid) {
      auto v = json::parse(h->second.second, nullptr, false);
      v["taken_back"] = true;
      h->second.second = v.dump();
      release(key, sid, 0);
    }
    etcd::txn_result failed;
    failed.error.kind = etcd::errc::unavailable;
    failed.error.message = "etcd did not answer in time; nothing applied";
    return finish_commit(failed);
  }
  const etcd::key_value* kv = nullptr;
  if (!r.responses.empty() && !r.responses[0].range.kvs.empty())
    kv = &r.responses[0].range.kvs[0];
  auto v = kv ? json::parse(kv->value, nullptr, false) : json{};
  if (v.is_object() && v.value("state", "") == "joined"
      && v.value("session_id", "") == sid) {
    etcd::txn_result applied;
    applied.succeeded = true;
    applied.revision = kv->mod_revision;
    spdlog::info("cluster: a commit etcd did not answer had applied "
                 "(revision {})", kv->mod_revision);
    return finish_commit(applied);
  }
  // Neither ours nor the member: the commit cannot apply. Ours taken
  // back by an earlier try that etcd did not answer: given back.
  if (v.is_object() && v.value("session_id", "") == sid && h != held_names.end()
      && h->second.first == sid) {
    h->second.second = kv->value;
    release(key, sid, 0);
  }
  etcd::txn_result failed;
  failed.succeeded = false;
  return finish_commit(failed);
}

void etcd_store_state::finish_commit(const etcd::txn_result& r) {
  in_flight = 0;
  if (r.error || !r.succeeded) {
    std::string why;
    if (r.error) {
      why = "etcd did not commit: " + describe(r.error);
      if (r.error.kind == etcd::errc::unavailable)
        ctx->failed_ns = steady_ns();
    } else {
      why = "a condition failed: this instance's lease is gone (fenced "
            "until it has a new one), or a join's reservation was lost";
    }
    spdlog::warn("cluster: {} commit of {} changes failed: {}", owner_name,
                 sent.size(), why);
    fail(sent, why);
  } else {
    for (auto& k : sent_keys) {
      auto& rev = own_rev[k];
      rev = std::max(rev, r.revision);
    }
    if (stats)
      ++stats->cluster_commits;
    for (auto& q : sent)
      if (q.has_rp)
        q.rp.deliver(static_cast<uint64_t>(r.revision));
    // Committed names are members' now, no longer reservations.
    for (auto& [key, sid] : committing_names)
      if (auto h = held_names.find(key);
          h != held_names.end() && h->second.first == sid)
        held_names.erase(h);
    ctx->failed_ns = 0;
  }
  next_after_commit();
}

void etcd_store_state::next_after_commit() {
  sent.clear();
  sent_keys.clear();
  auto events = std::move(held);
  held.clear();
  forward(events);
  send_next();
}

void etcd_store_state::settle() {
  if (in_flight != 0 || !queue.empty())
    return;
  for (auto& rp : flush_waiting)
    rp.deliver(static_cast<uint64_t>(last_rev));
  flush_waiting.clear();
  if (stopping)
    self->quit();
}

void etcd_store_state::forward(std::vector<etcd::watch_event>& events) {
  remote_batch batch;
  for (auto& ev : events) {
    auto& key = ev.kv.key;
    if (in_flight != 0 && sent_keys.count(key) != 0) {
      held.push_back(std::move(ev));
      continue;
    }
    auto rev = ev.kv.mod_revision;
    if (auto i = own_rev.find(key); i != own_rev.end()) {
      auto mine = i->second;
      if (rev >= mine)
        own_rev.erase(i);
      if (rev <= mine)
        continue; // our own write, or one ours replaced
    }
    remote_change c;
    if (!split_cluster_key(prefix, key, c.parent, c.key))
      continue;
    if (ev.type == etcd::event_type::put)
      c.json = std::make_shared<const std::string>(std::move(ev.kv.value));
    batch.changes.push_back(std::move(c));
  }
  if (batch.changes.empty())
    return;
  if (stats)
    stats->cluster_remote_changes += batch.changes.size();
  hand_over(std::move(batch));
}

void etcd_store_state::hand_over(remote_batch batch) {
  if (owner)
    caf::anon_send(owner, atom::remote_v, std::move(batch));
  else
    early.push_back(std::move(batch));
}

void etcd_store_state::watch_from(int64_t revision) {
  etcd::watch_request w;
  w.key = prefix;
  w.prefix = true;
  w.start_revision = revision;
  w.prev_kv = false;
  auto me = caf::actor_cast<etcd_store_actor>(self);
  auto gen = ++watch_gen;
  watch_id = ctx->client->watch(w, [me, gen](const etcd::watch_update& u) {
    caf::anon_send(me, watch_msg{gen, u});
  });
}

void etcd_store_state::watched(watch_msg& m) {
  if (m.watch != watch_gen)
    return;
  auto& u = m.update;
  switch (u.what) {
    case etcd::watch_update::kind::events:
      for (auto& ev : u.events)
        last_rev = std::max(last_rev, ev.kv.mod_revision);
      forward(u.events);
      break;
    case etcd::watch_update::kind::progress:
    case etcd::watch_update::kind::created:
      last_rev = std::max(last_rev, u.revision);
      break;
    case etcd::watch_update::kind::broken:
      spdlog::debug("cluster: {} watch broken ({}); it resumes", owner_name,
                    u.message);
      break;
    case etcd::watch_update::kind::compacted:
      spdlog::warn("cluster: {} watch fell behind a compaction at revision "
                   "{}: reading the whole state again",
                   owner_name, u.compact_revision);
      resync();
      break;
  }
}

void etcd_store_state::resync() {
  if (resyncing)
    return;
  resyncing = true;
  ctx->client->cancel_watch(watch_id);
  ++watch_gen;
  auto me = caf::actor_cast<etcd_store_actor>(self);
  range_all(ctx->client, prefix, 0,
            [me](etcd::etcd_error e, int64_t rev,
                 std::vector<etcd::key_value> kvs) {
              caf::anon_send(me, resync_done{std::move(e), rev, std::move(kvs)});
            });
}

void etcd_store_state::resynced(resync_done& d) {
  resyncing = false;
  if (d.error) {
    spdlog::warn("cluster: {} resync failed ({}); retrying", owner_name,
                 describe(d.error));
    self->delayed_send(self, std::chrono::seconds(1), tick{});
    return;
  }
  remote_batch batch;
  batch.resync = true;
  for (auto& kv : d.kvs) {
    remote_change c;
    if (!split_cluster_key(prefix, kv.key, c.parent, c.key))
      continue;
    c.json = std::make_shared<const std::string>(std::move(kv.value));
    batch.changes.push_back(std::move(c));
  }
  own_rev.clear();
  // Events held for keys in flight are older than the read (it saw them
  // or newer): handed over after it, they would undo it.
  held.erase(std::remove_if(held.begin(), held.end(),
                            [&](const etcd::watch_event& e) {
                              return e.kv.mod_revision <= d.revision;
                            }),
             held.end());
  last_rev = d.revision;
  spdlog::info("cluster: {} resynced: {} entries at revision {}", owner_name,
               batch.changes.size(), d.revision);
  hand_over(std::move(batch));
  watch_from(d.revision + 1);
}

} // namespace cluster_detail

namespace {

etcd_store_actor::behavior_type
etcd_store_fn(etcd_store_actor::stateful_pointer<etcd_store_state> self,
                            std::shared_ptr<cluster_context> ctx,
                            std::string owner, int64_t revision,
                            std::shared_ptr<server_stats> stats) {
  auto& st = self->state;
  st.self = self;
  st.ctx = std::move(ctx);
  st.stats = std::move(stats);
  st.owner_name = owner;
  st.prefix = owner_prefix(*st.ctx, owner);
  st.last_rev = revision;
  st.watch_from(revision + 1);
  self->set_exit_handler([self](caf::exit_msg&) {
    self->state.stopping = true;
    self->state.settle();
  });
  self->attach_functor([ctx = st.ctx, self] {
    // The watch's callbacks end with the actor.
    ctx->client->cancel_watch(self->state.watch_id);
  });
  return {
    [=](atom::write, store_batch& batch) -> caf::result<uint64_t> {
      auto rp = self->make_response_promise<uint64_t>();
      self->state.enqueue(std::move(batch), rp, true);
      return rp;
    },
    [=](atom::write, store_batch& batch, atom::sweep) {
      self->state.enqueue(std::move(batch), {}, false);
    },
    [=](atom::flush) -> caf::result<uint64_t> {
      auto rp = self->make_response_promise<uint64_t>();
      self->state.flush_waiting.push_back(rp);
      self->state.settle();
      return rp;
    },
    [=](atom::flush, atom::sweep) { self->state.send_next(); },
    [=](atom::compact) -> caf::result<uint64_t> {
      // etcd keeps the state: no snapshot to write (backups are etcdctl
      // snapshot save).
      return static_cast<uint64_t>(self->state.last_rev);
    },
    [=](atom::stop) {
      self->state.stopping = true;
      self->state.settle();
    },
    [=](atom::peers, remote_owner_actor& owner) {
      auto& st = self->state;
      st.owner = owner;
      for (auto& b : st.early)
        caf::anon_send(owner, atom::remote_v, std::move(b));
      st.early.clear();
    },
    [=](txn_done& d) { self->state.committed(d); },
    [=](watch_msg& m) { self->state.watched(m); },
    [=](resync_done& d) { self->state.resynced(d); },
    [=](tick) { self->state.resync(); },
    [=](atom::reserve, const std::string& lobby_id, const std::string& bot,
        const std::string& nick,
        const std::string& session_id) -> caf::result<std::string> {
      auto& st = self->state;
      auto rp = self->make_response_promise<std::string>();
      auto id = ++st.next_job;
      st.reserving.emplace(
        id, etcd_store_state::reserve_job{
              rp, claim_key(*st.ctx, lobby_id, bot, nick), session_id,
              std::chrono::steady_clock::now() + reserve_wait, {}, 0});
      st.reserve(id);
      return rp;
    },
    [=](reserve_done& d) { self->state.reserved(d); },
    [=](reserve_retry& r) { self->state.reserve(r.job); },
    [=](atom::leave, const std::string& lobby_id, const std::string& bot,
        const std::string& nick, const std::string& session_id) {
      auto& st = self->state;
      st.release(claim_key(*st.ctx, lobby_id, bot, nick), session_id, 0);
    },
    [=](const release_done& d) { self->state.released(d); },
    [=](const release_retry& r) {
      self->state.release(r.key, r.session_id, r.attempt, r.lingering);
    },
    [=](settle_done& d) { self->state.settled(d); },
    [=](const settle_retry& r) { self->state.settle(r.id, r.attempt); },
  };
}

} // namespace

etcd_store_handles spawn_etcd_store(caf::actor_system& sys,
                                    std::shared_ptr<cluster_context> ctx,
                                    std::string owner, int64_t revision,
                                    std::shared_ptr<server_stats> stats) {
  auto a = sys.spawn(etcd_store_fn, std::move(ctx), std::move(owner), revision,
                     std::move(stats));
  return {a, a, a};
}



} // namespace vb
