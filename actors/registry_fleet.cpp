// The registry's fleet rules over time (SPEC §3, §7): heartbeats and other
// signs of life, states and suspects, drains, runs counting, evictions.
#include <algorithm>
#include <chrono>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/registry.hpp"
#include "actors/stats.hpp"
#include "model/clock.hpp"
#include "model/journal_codec.hpp"
#include "model/snapshot_codec.hpp"

namespace vb {

// -- signs of life ------------------------------------------------------------

caf::expected<double> registry_state::touch(const std::string& id,
                                            const heartbeat& hb) {
  auto i = providers.find(id);
  if (i == providers.end() || (!hb.instance_id.empty()
                               && i->second.value->instance_id != hb.instance_id
                               && is_removed(id, hb.instance_id))) {
    if (is_removed(id, hb.instance_id)) {
      if (stats)
        ++stats->removed_answers;
      return make_error(ec::removed, "Provider was removed");
    }
    return make_error(ec::not_found, "Provider not found");
  }
  auto& before = *i->second.value;
  auto next = before;
  auto now = unix_now();
  next.last_seen = now;
  next.lease_expires_at = lease_from_now();
  if (hb.load >= 0)
    next.load = hb.load;
  if (hb.capacity >= 0)
    next.capacity = hb.capacity;
  ++version;
  if (hb.has_bots) {
    unindex(next);
    next.bots = hb.bots;
    index(next);
    changed_since_flush.insert(id);
  }
  revive(next, before);
  // Room again after a full house: orphans of its bots may move in.
  if (before.capacity == 0 && next.capacity > 0
      && next.status == provider_status::online)
    offer_orphans(next);
  // Runs it was given more than two intervals ago and no longer lists are
  // lost (SPEC §7): the directory dispatches them again.
  auto& e = i->second;
  if (hb.has_runs && directory) {
    auto interval = next.heartbeat_interval > 0 ? next.heartbeat_interval
                    : e.last_beat > 0           ? now - e.last_beat
                                                : 0;
    if (interval > 0)
      self->send(directory, atom::lost_v, id, hb.runs, now - 2 * interval);
  }
  set(e, std::move(next));
  e.seen = self->clock().now();
  e.last_beat = now;
  ++e.beats;
  seen_since_flush.insert(id);
  arm_suspect(id);
  return e.value->last_seen;
}

void registry_state::mark_seen(const std::string& id) {
  auto i = providers.find(id);
  if (i == providers.end())
    return;
  auto& before = *i->second.value;
  auto next = before;
  next.last_seen = unix_now();
  next.lease_expires_at = lease_from_now();
  auto was_online = before.status == provider_status::online;
  revive(next, before);
  set(i->second, std::move(next));
  i->second.seen = self->clock().now();
  ++version;
  seen_since_flush.insert(id);
  // Back online without a heartbeat: its heartbeats are due all the same.
  if (!was_online)
    arm_suspect(id);
}

void registry_state::revive(provider& next, const provider& before) {
  if (before.status == provider_status::draining
      || before.status == provider_status::online)
    return;
  spdlog::info("provider {} id={}: {} -> online", next.name, next.provider_id,
               to_string(before.status));
  next.status = provider_status::online;
  offer_orphans(next);
}

void registry_state::offer_orphans(const provider& p) {
  if (!directory)
    return;
  std::vector<std::string> bots;
  for (auto& b : p.bots)
    bots.push_back(b.name);
  self->send(directory, atom::orphans_v, std::move(bots));
}

// -- states and suspects ------------------------------------------------------

void registry_state::set_status(const std::string& id,
                                provider_status status) {
  auto i = providers.find(id);
  if (i == providers.end() || i->second.value->status == status)
    return;
  // A draining provider stays draining, whatever its calls do.
  if (i->second.value->status == provider_status::draining)
    return;
  auto next = *i->second.value;
  spdlog::info("provider {} id={}: {} -> {}", next.name, id,
               to_string(next.status), to_string(status));
  next.status = status;
  set(i->second, std::move(next));
  ++version;
}

void registry_state::arm_suspect(const std::string& id) {
  auto i = providers.find(id);
  if (i == providers.end() || i->second.value->heartbeat_interval <= 0)
    return;
  auto two = std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double>(2 * i->second.value->heartbeat_interval));
  self->delayed_send(self, two, atom::suspect_v, id, i->second.beats);
}

void registry_state::suspect(const std::string& id, uint64_t beats) {
  auto i = providers.find(id);
  // Two intervals without a heartbeat (SPEC §7).
  if (i == providers.end() || i->second.beats != beats
      || i->second.value->status != provider_status::online)
    return;
  set_status(id, provider_status::suspect);
}

// -- drains -------------------------------------------------------------------

void registry_state::drain(const std::string& id, const drain_request& req,
                           caf::typed_response_promise<provider> rp) {
  auto next = *providers.at(id).value;
  auto timeout = req.timeout > 0
                   ? req.timeout
                   : std::chrono::duration<double>(config.drain_timeout)
                       .count();
  next.status = provider_status::draining;
  next.drain_deadline = unix_now() + timeout;
  next.drain_by_operator = req.by_operator;
  auto json = std::make_shared<const std::string>(provider_json(next));
  write({store_change{provider_put_record(*json), {image_op{{}, id, json}}}},
        [this, rp, id, next, timeout](const caf::error& err) {
          drained(err, id, next, timeout, rp);
        });
}

void registry_state::drained(const caf::error& err, const std::string& id,
                             const provider& next, double timeout,
                             caf::typed_response_promise<provider> rp) {
  if (err) {
    rp.deliver(err);
    return;
  }
  auto i = providers.find(id);
  if (i == providers.end()) {
    rp.deliver(make_error(ec::not_found, "Provider not found"));
    return;
  }
  // What changed meanwhile (heartbeats, runs) is kept.
  auto now = *i->second.value;
  now.status = provider_status::draining;
  now.drain_deadline = next.drain_deadline;
  now.drain_by_operator = next.drain_by_operator;
  spdlog::info("provider {} id={}: draining for {:.0f} s ({} bot members)",
               now.name, id, timeout, now.active_runs);
  set(i->second, now);
  ++version;
  if (stats)
    ++stats->drains;
  self->delayed_send(self,
                     std::chrono::duration_cast<caf::timespan>(
                       std::chrono::duration<double>(timeout)),
                     atom::expire_v, id, now.drain_deadline);
  rp.deliver(now);
  if (now.active_runs == 0)
    end_drain(id, false);
}

void registry_state::expire(const std::string& id, double deadline) {
  auto i = providers.find(id);
  // The timer of an earlier drain (ended, or replaced by another) is stale.
  if (i == providers.end()
      || i->second.value->status != provider_status::draining
      || i->second.value->drain_deadline != deadline)
    return;
  end_drain(id, true);
}

void registry_state::end_drain(const std::string& id, bool timed_out) {
  auto i = providers.find(id);
  if (i == providers.end()
      || i->second.value->status != provider_status::draining)
    return;
  auto& p = *i->second.value;
  spdlog::info("provider {} id={}: drain {} ({} bot members left)", p.name,
               id, timed_out ? "timed out" : "done", p.active_runs);
  // Timed out: its members go elsewhere, and the lobbies tell it to stop
  // those runs; done: it runs nothing, it just leaves.
  remove(id, p.drain_by_operator, move_reason::drained, timed_out,
         [id](const caf::error& err) {
           if (err)
             spdlog::error("provider {}: deregistration after its drain "
                           "failed: {}",
                           id, to_string(err));
         });
}

// -- runs counting ------------------------------------------------------------

void registry_state::count_runs(const std::string& id, uint64_t count) {
  if (id.empty()) {
    // The directory's census at start-up is complete: a drain loaded from
    // disk whose provider runs nothing ends now, not at its deadline.
    std::vector<std::string> idle;
    for (auto& [pid, e] : providers)
      if (e.value->status == provider_status::draining
          && e.value->active_runs == 0)
        idle.push_back(pid);
    for (auto& pid : idle)
      end_drain(pid, false);
    return;
  }
  auto i = providers.find(id);
  if (i == providers.end() || i->second.value->active_runs == count)
    return;
  auto next = *i->second.value;
  next.active_runs = count;
  // Not in the durable record: its rendered JSON stays as it is.
  i->second.value = std::make_shared<const provider>(std::move(next));
  ++version;
  if (count == 0 && i->second.value->status == provider_status::draining)
    end_drain(id, false);
}

// -- evictions ----------------------------------------------------------------

stale_report registry_state::stale(caf::timespan stale_after) const {
  stale_report result;
  result.total = providers.size();
  auto now = self->clock().now();
  for (auto& [id, e] : providers) {
    auto unseen = now - e.seen;
    if (unseen >= stale_after)
      result.entries.push_back(
        stale_entry{id, std::chrono::duration_cast<caf::timespan>(unseen),
                    e.value->via, e.value->base_url});
  }
  return result;
}

std::vector<std::string>
registry_state::evictable(const std::vector<std::string>& ids,
                          caf::timespan stale_after) const {
  std::vector<std::string> result;
  auto now = self->clock().now();
  for (auto& id : ids) {
    auto i = providers.find(id);
    // A provider seen since the sweep asked is kept.
    if (i == providers.end() || now - i->second.seen < stale_after)
      continue;
    result.push_back(id);
  }
  return result;
}

void registry_state::evict(
  std::vector<std::string> ids,
  caf::typed_response_promise<std::vector<std::string>> rp) {
  store_batch batch;
  for (auto& id : ids)
    batch.push_back(
      store_change{provider_del_record(id), {image_op{{}, id, nullptr}}});
  write(std::move(batch), [this, rp, ids](const caf::error& err) mutable {
    if (err) {
      rp.deliver(err);
      return;
    }
    std::vector<std::string> evicted;
    auto now = self->clock().now();
    for (auto& id : ids) {
      auto i = providers.find(id);
      if (i == providers.end())
        continue;
      auto unseen = std::chrono::duration<double>(now - i->second.seen);
      spdlog::info("provider evicted: {} id={} unseen for {:.0f} s",
                   i->second.value->name, id, unseen.count());
      auto old = *i->second.value;
      erase(id);
      evicted.push_back(id);
      // Its bot members go elsewhere (SPEC §7); no tombstone: it was not
      // removed on purpose.
      if (directory)
        self->send(directory, atom::redispatch_v, old, move_reason::evicted);
    }
    rp.deliver(std::move(evicted));
  });
}

} // namespace vb
