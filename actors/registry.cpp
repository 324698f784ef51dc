#include "actors/registry.hpp"

#include <algorithm>
#include <array>
#include <chrono>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/in_order.hpp"
#include "actors/journal_store.hpp"
#include "actors/stats.hpp"
#include "model/clock.hpp"
#include "model/ids.hpp"
#include "model/journal_codec.hpp"
#include "model/snapshot_codec.hpp"

namespace vb {

namespace {

/// One provider from its snapshot JSON (provider_json), through the
/// validated snapshot decoder; false (and `why`) unless it is exactly one
/// provider, `id`.
bool decode_provider(const std::string& json, const std::string& id,
                     provider& out, std::string& why) {
  std::vector<provider> ps;
  if (!decode_providers(encode_provider_fragments({&json}), ps, why))
    return false;
  if (ps.size() != 1 || ps[0].provider_id != id) {
    why = "not one provider with the id of its key";
    return false;
  }
  out = std::move(ps[0]);
  return true;
}

} // namespace

std::vector<provider> load_providers(const std::string& dir,
                                     journal_store_seed& seed,
                                     server_stats* stats) {
  auto result = load_values<provider_replay>(dir, providers_file_name,
                                             decode_providers, seed, stats);
  seed.render = render_providers;
  for (auto& p : result)
    seed.image.apply(image_op{{}, p.provider_id,
                              std::make_shared<const std::string>(provider_json(p))});
  spdlog::info("loaded {} providers from {}/{}", result.size(), dir,
               providers_file_name);
  return result;
}

// -- state methods ------------------------------------------------------------

registry_state::entry registry_state::make_entry(provider value,
                                                 caf::actor_clock::time_point seen,
                                                 uint64_t order) {
  entry e;
  e.seen = seen;
  e.order = order;
  set(e, std::move(value));
  return e;
}

void registry_state::set(entry& e, provider value) {
  e.json = std::make_shared<const std::string>(provider_json(value));
  e.value = std::make_shared<const provider>(std::move(value));
}

void registry_state::init(std::vector<provider> initial) {
  auto now = self->clock().now();
  for (auto& p : initial) {
    if (p.provider_id.empty() || providers.count(p.provider_id) != 0)
      continue;
    // A CAF provider's link died with the server: it is unreachable until
    // it connects and registers again.
    if (p.via == transport::caf && p.status != provider_status::draining)
      p.status = provider_status::unreachable;
    // Judged from the server's start (SPEC §3): its lease starts now.
    p.lease_expires_at = lease_from_now();
    p.load = -1;
    p.capacity = -1;
    p.active_runs = 0;
    if (p.status == provider_status::draining)
      self->delayed_send(self,
                         std::chrono::duration_cast<caf::timespan>(
                           std::chrono::duration<double>(
                             std::max(0.0, p.drain_deadline - unix_now()))),
                         atom::expire_v, p.provider_id, p.drain_deadline);
    index(p);
    auto id = p.provider_id;
    providers.emplace(id, make_entry(std::move(p), now, next_order++));
  }
  listing_changed();
}

caf::error registry_state::check_key(const std::string& key) const {
  if (config.provider_keys.empty())
    return {};
  if (key.empty())
    return make_error(ec::key_missing);
  for (auto& k : config.provider_keys)
    if (k == key)
      return {};
  return make_error(ec::key_invalid);
}

registry_state::planned
registry_state::plan(const provider_registration& reg) {
  // A known id wins; then the same endpoint (registered, or on its way to
  // the store); then the id the provider remembers (it was evicted or this
  // server lost it); then a new one. CAF providers have no endpoint, so only
  // their id identifies them.
  auto is_http = reg.via == transport::http;
  std::pair<std::string, std::string> ep{reg.name, reg.base_url};
  auto endpoint = is_http ? by_endpoint.find(ep) : by_endpoint.end();
  auto in_flight = is_http ? pending_endpoints.find(ep) : pending_endpoints.end();
  std::string id;
  if (!reg.provider_id.empty() && providers.count(reg.provider_id) != 0) {
    id = reg.provider_id;
  } else if (endpoint != by_endpoint.end()) {
    id = endpoint->second;
  } else if (in_flight != pending_endpoints.end()) {
    id = in_flight->second;
  } else if (!reg.provider_id.empty()) {
    id = reg.provider_id;
  } else {
    id = new_uuid(rng);
  }
  planned result;
  auto now = unix_now();
  auto& next = result.value;
  next.provider_id = id;
  next.name = reg.name;
  next.base_url = reg.base_url;
  next.description = reg.description;
  next.via = reg.via;
  next.bots = reg.bots;
  next.registered_at = now;
  next.last_seen = now;
  next.status = provider_status::online;
  next.instance_id = reg.instance_id;
  next.heartbeat_interval = reg.heartbeat_interval;
  next.lease_expires_at = lease_from_now();
  if (auto i = providers.find(id); i != providers.end()) {
    auto& old = *i->second.value;
    next.registered_at = old.registered_at;
    next.active_runs = old.active_runs;
    // The same instance registering again is still draining; a new one
    // (a restarted provider) starts afresh.
    if (old.status == provider_status::draining
        && old.instance_id == reg.instance_id) {
      next.status = provider_status::draining;
      next.drain_deadline = old.drain_deadline;
      next.drain_by_operator = old.drain_by_operator;
    }
  }
  // Another entry with this endpoint is the same provider under an old id.
  if (endpoint != by_endpoint.end() && endpoint->second != id)
    result.replaces = endpoint->second;
  result.json = std::make_shared<const std::string>(provider_json(next));
  if (is_http)
    pending_endpoints[ep] = id;
  return result;
}

std::string registry_state::upsert(planned p) {
  auto& next = p.value;
  auto id = next.provider_id;
  if (next.via == transport::http) {
    auto i = pending_endpoints.find({next.name, next.base_url});
    if (i != pending_endpoints.end() && i->second == id)
      pending_endpoints.erase(i);
  }
  if (!p.replaces.empty() && p.replaces != id)
    erase(p.replaces);
  auto order = next_order;
  uint64_t beats = 0;
  auto was_online = false;
  if (auto i = providers.find(id); i != providers.end()) {
    order = i->second.order;
    beats = i->second.beats;
    was_online = i->second.value->status == provider_status::online;
    unindex(*i->second.value);
    providers.erase(i);
  } else {
    ++next_order;
  }
  // A new instance under this id is welcome again.
  tombstones.erase(id);
  index(next);
  entry e;
  e.seen = self->clock().now();
  e.order = order;
  // A registration is a sign of life too: suspect timers armed before it
  // are stale (SPEC §7: two intervals without one).
  e.beats = beats + 1;
  e.json = std::move(p.json);
  e.value = std::make_shared<const provider>(std::move(next));
  providers.emplace(id, std::move(e));
  listing_changed();
  auto& v = *providers.at(id).value;
  spdlog::info("provider registered: {} ({}) id={} bots={}", v.name,
               v.base_url.empty() ? to_string(v.via) : v.base_url, id,
               v.bots.size());
  arm_suspect(id);
  if (!was_online && v.status == provider_status::online)
    offer_orphans(v);
  return id;
}

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

bool registry_state::erase(const std::string& id) {
  auto i = providers.find(id);
  if (i == providers.end())
    return false;
  unindex(*i->second.value);
  providers.erase(i);
  listing_changed();
  return true;
}

provider_catalog_ptr registry_state::catalog() const {
  if (catalog_cache && catalog_cache->version == version)
    return catalog_cache;
  auto sorted = in_order(providers);
  auto result = std::make_shared<provider_catalog>();
  result->version = version;
  result->providers.reserve(sorted.size());
  for (auto e : sorted)
    result->providers.push_back(*e->value);
  catalog_cache = std::move(result);
  return catalog_cache;
}

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

double registry_state::lease_from_now() const {
  return unix_now()
         + std::chrono::duration<double>(config.stale_after).count();
}

bool registry_state::admit(double& retry_after) {
  auto rate = config.max_registrations_per_second;
  // A burst of the same size, and never less than one registration.
  auto burst = std::max(1.0, rate);
  auto now = self->clock().now();
  if (refilled == caf::actor_clock::time_point{}) {
    tokens = burst;
  } else {
    auto dt = std::chrono::duration<double>(now - refilled).count();
    tokens = std::min(burst, tokens + dt * rate);
  }
  refilled = now;
  if (tokens >= 1) {
    tokens -= 1;
    return true;
  }
  retry_after = (1 - tokens) / rate;
  return false;
}

bool registry_state::is_removed(const std::string& id,
                                const std::string& instance) {
  if (instance.empty())
    return false;
  auto i = tombstones.find(id);
  if (i == tombstones.end())
    return false;
  if (self->clock().now() >= i->second.until) {
    tombstones.erase(i);
    return false;
  }
  return i->second.instance_id == instance;
}

void registry_state::bury(const provider& p) {
  // Providers that announce no instance keep SPEC §3's behaviour: 404, and
  // they register again.
  if (p.instance_id.empty())
    return;
  tombstones[p.provider_id] =
    tombstone{p.instance_id, self->clock().now() + config.stale_after};
}

void registry_state::arm_suspect(const std::string& id) {
  auto i = providers.find(id);
  if (i == providers.end() || i->second.value->heartbeat_interval <= 0)
    return;
  auto two = std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double>(2 * i->second.value->heartbeat_interval));
  self->delayed_send(self, two, atom::suspect_v, id, i->second.beats);
}

void registry_state::remove(const std::string& id, bool on_purpose,
                            move_reason why, bool redispatch,
                            std::function<void(const caf::error&)> done) {
  write({store_change{provider_del_record(id), {image_op{{}, id, nullptr}}}},
        [this, id, on_purpose, why, redispatch,
         done](const caf::error& err) {
          if (err)
            return done(err);
          auto i = providers.find(id);
          if (i == providers.end())
            return done({});
          auto old = *i->second.value;
          erase(id);
          if (on_purpose)
            bury(old);
          spdlog::info("provider deregistered: id={} ({}: {}{})", id, old.name,
                       to_string(why), on_purpose ? ", tombstone kept" : "");
          if (redispatch && directory)
            self->send(directory, atom::redispatch_v, old, why);
          done({});
        });
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

placement registry_state::place(const std::string& bot,
                                const std::string& preferred) const {
  placement result;
  auto b = by_bot.find(bot);
  if (b == by_bot.end())
    return result;
  result.known = true;
  // Tiers: online; suspect only when none is online; unreachable only when
  // neither (the last resort: an accepted dispatch is how an HTTP provider
  // of the original protocol, which sends no heartbeats, comes back).
  // Never draining, never without capacity when it announced one.
  std::array<std::vector<const entry*>, 3> tiers;
  for (auto& id : b->second) {
    auto& e = providers.at(id);
    auto& p = *e.value;
    if (p.capacity == 0)
      continue;
    switch (p.status) {
      case provider_status::online: tiers[0].push_back(&e); break;
      case provider_status::suspect: tiers[1].push_back(&e); break;
      case provider_status::unreachable: tiers[2].push_back(&e); break;
      case provider_status::draining: break;
    }
  }
  for (auto& tier : tiers) {
    if (tier.empty())
      continue;
    std::sort(tier.begin(), tier.end(), [&](auto x, auto y) {
      auto& a = *x->value;
      auto& c = *y->value;
      auto xp = a.provider_id == preferred;
      auto yp = c.provider_id == preferred;
      if (xp != yp)
        return xp;
      auto la = std::max(0.0, a.load);
      auto lc = std::max(0.0, c.load);
      if (la != lc)
        return la < lc;
      if (a.active_runs != c.active_runs)
        return a.active_runs < c.active_runs;
      return x->seen > y->seen;
    });
    result.candidates.reserve(tier.size());
    for (auto e : tier)
      result.candidates.push_back(e->value);
    break;
  }
  return result;
}

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

store_batch registry_state::seen_batch() {
  store_batch batch;
  std::vector<std::pair<std::string, double>> seen;
  for (auto& id : seen_since_flush) {
    auto i = providers.find(id);
    if (i == providers.end())
      continue;
    if (changed_since_flush.count(id) != 0)
      continue; // its put record below carries last_seen too
    seen.emplace_back(id, i->second.value->last_seen);
  }
  store_change change;
  if (!seen.empty())
    change.record = provider_seen_record(seen);
  for (auto& id : seen_since_flush)
    if (auto i = providers.find(id); i != providers.end())
      change.ops.push_back(image_op{{}, id, i->second.json});
  if (!change.ops.empty() && !change.record.empty())
    batch.push_back(std::move(change));
  for (auto& id : changed_since_flush)
    if (auto i = providers.find(id); i != providers.end())
      batch.push_back(store_change{provider_put_record(*i->second.json),
                                   {image_op{{}, id, i->second.json}}});
  seen_since_flush.clear();
  changed_since_flush.clear();
  return batch;
}

void registry_state::write(store_batch batch,
                           std::function<void(const caf::error&)> done) {
  self->request(store, config.store_timeout, atom::write_v, std::move(batch))
    .then([done](uint64_t) { done({}); },
          [done](caf::error& err) {
            if (err == caf::sec::request_timeout)
              err = make_error(ec::storage_failed, "the store did not answer");
            done(err);
          });
}

void registry_state::apply_remote(const remote_batch& batch) {
  auto now = self->clock().now();
  std::set<std::string> named;
  size_t set_count = 0;
  size_t erased = 0;
  for (auto& c : batch.changes) {
    if (!c.parent.empty() || c.key.empty()) {
      spdlog::warn("registry: remote change '{}/{}' is not a provider: "
                   "skipped",
                   c.parent, c.key);
      continue;
    }
    named.insert(c.key);
    // The other instance's value is the durable one now: nothing of ours
    // for it is written.
    seen_since_flush.erase(c.key);
    changed_since_flush.erase(c.key);
    if (!c.json) {
      // Erased only: the instance that removed it keeps the tombstone and
      // dispatches its members again.
      if (erase(c.key))
        ++erased;
      continue;
    }
    provider next;
    std::string why;
    if (!decode_provider(*c.json, c.key, next, why)) {
      spdlog::warn("registry: remote provider {} skipped: {}", c.key, why);
      continue;
    }
    put_remote(std::move(next), c.json, now);
    ++set_count;
  }
  if (batch.resync) {
    std::vector<std::string> gone;
    for (auto& [id, e] : providers)
      if (named.count(id) == 0)
        gone.push_back(id);
    for (auto& id : gone) {
      seen_since_flush.erase(id);
      changed_since_flush.erase(id);
      erase(id);
    }
    erased += gone.size();
  }
  if (set_count > 0)
    listing_changed();
  if (set_count > 0 || erased > 0)
    spdlog::debug("registry: remote changes: {} providers set, {} erased{}",
                  set_count, erased, batch.resync ? " (resync)" : "");
}

void registry_state::put_remote(provider next,
                                std::shared_ptr<const std::string> json,
                                caf::actor_clock::time_point now) {
  auto id = next.provider_id;
  // Someone just wrote it: its lease runs from now, as init's from the
  // start. The status, the drain and the rest are as written.
  next.lease_expires_at = lease_from_now();
  auto i = providers.find(id);
  if (i == providers.end()) {
    // Not in the snapshot text: none announced to this instance yet.
    next.load = -1;
    next.capacity = -1;
    next.active_runs = 0;
    index(next);
    entry e;
    e.seen = now;
    e.order = next_order++;
    e.json = std::move(json);
    e.value = std::make_shared<const provider>(std::move(next));
    providers.emplace(id, std::move(e));
  } else {
    auto& e = i->second;
    auto& old = *e.value;
    // What this instance saw itself (heartbeats, its lobbies' members).
    next.load = old.load;
    next.capacity = old.capacity;
    next.active_runs = old.active_runs;
    unindex(old);
    index(next);
    e.json = std::move(json);
    e.value = std::make_shared<const provider>(std::move(next));
    // A sign of life, as a registration is: suspect timers armed before it
    // are stale. The registration order stays.
    e.seen = now;
    ++e.beats;
  }
  // A new instance under this id is welcome again (as upsert does).
  tombstones.erase(id);
}

void registry_state::index(const provider& p) {
  // CAF providers have no endpoint: they are known by their id alone.
  if (p.via == transport::http)
    by_endpoint[{p.name, p.base_url}] = p.provider_id;
  for (auto& b : p.bots)
    by_bot[b.name].insert(p.provider_id);
}

void registry_state::unindex(const provider& p) {
  if (auto i = by_endpoint.find({p.name, p.base_url});
      i != by_endpoint.end() && i->second == p.provider_id)
    by_endpoint.erase(i);
  for (auto& b : p.bots) {
    auto i = by_bot.find(b.name);
    if (i == by_bot.end())
      continue;
    i->second.erase(p.provider_id);
    if (i->second.empty())
      by_bot.erase(i);
  }
}

void registry_state::listing_changed() {
  ++version;
  if (stats)
    stats->providers = providers.size();
}

// -- factory ------------------------------------------------------------------

registry_actor::behavior_type
registry(registry_actor::stateful_pointer<registry_state> self,
         store_actor store, std::vector<provider> initial,
         registry_config config, std::shared_ptr<server_stats> stats) {
  auto& st = self->state;
  st.self = self;
  st.store = std::move(store);
  st.config = std::move(config);
  st.stats = std::move(stats);
  // The final heartbeat record goes to the store on any exit (the store
  // writes what it was sent before its own exit).
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto batch = self->state.seen_batch();
    if (!batch.empty())
      self->send(self->state.store, atom::write_v, std::move(batch),
                 atom::sweep_v);
    self->quit(msg.reason);
  });
  st.init(std::move(initial));
  self->delayed_send(self, st.config.flush_interval, atom::flush_v,
                     atom::sweep_v);
  return {
    [=](atom::registration,
        const provider_registration& reg) -> caf::result<std::string> {
      auto& st = self->state;
      // Heartbeats are never limited; registrations are (SPEC §7, herds).
      double retry_after = 0;
      if (!st.admit(retry_after)) {
        if (st.stats)
          ++st.stats->rate_limited;
        return make_error(ec::rate_limited,
                          std::string{"Too many registrations"}, retry_after);
      }
      if (auto err = st.check_key(reg.provider_key))
        return err;
      if (!reg.provider_id.empty() && st.providers.count(reg.provider_id) == 0
          && st.is_removed(reg.provider_id, reg.instance_id)) {
        if (st.stats)
          ++st.stats->removed_answers;
        return make_error(ec::removed, "Provider was removed");
      }
      auto plan = std::make_shared<registry_state::planned>(st.plan(reg));
      auto since = unix_now();
      auto runs = reg.has_runs
                    ? std::make_shared<std::vector<std::string>>(reg.runs)
                    : nullptr;
      store_batch batch;
      if (!plan->replaces.empty())
        batch.push_back(store_change{provider_del_record(plan->replaces),
                                     {image_op{{}, plan->replaces, nullptr}}});
      batch.push_back(store_change{
        provider_put_record(*plan->json),
        {image_op{{}, plan->value.provider_id, plan->json}}});
      auto rp = self->make_response_promise<std::string>();
      st.write(std::move(batch), [self, rp, plan, runs,
                                  since](const caf::error& err) mutable {
        auto& st = self->state;
        if (err) {
          auto& v = plan->value;
          auto i = st.pending_endpoints.find({v.name, v.base_url});
          if (i != st.pending_endpoints.end() && i->second == v.provider_id)
            st.pending_endpoints.erase(i);
          rp.deliver(err);
          return;
        }
        auto id = st.upsert(std::move(*plan));
        rp.deliver(id);
        // An HTTP provider that listed its runs (SPEC §7, reconciliation):
        // the lobbies keep the members it runs and dispatch the others
        // again; it is told to stop the runs no member holds.
        if (runs && st.directory) {
          std::vector<bot_run> listed;
          for (auto& r : *runs)
            listed.push_back(bot_run{r, {}, {}, {}, {}});
          self
            ->request(st.directory, st.config.peer_timeout, atom::reconcile_v,
                      id, std::move(listed), since)
            .then(
              [self, id](std::vector<std::string>& unknown) {
                auto& st = self->state;
                auto i = st.providers.find(id);
                if (i == st.providers.end() || !st.dispatcher)
                  return;
                spdlog::info("provider {} reconciled: {} runs no member "
                             "holds are stopped",
                             id, unknown.size());
                for (auto& run : unknown)
                  self
                    ->request(st.dispatcher, st.config.peer_timeout,
                              atom::stop_v, *i->second.value, run)
                    .then([](bool) {},
                          [run](caf::error& err) {
                            spdlog::warn("stop of run {} failed: {}", run,
                                         to_string(err));
                          });
              },
              [id](caf::error& err) {
                spdlog::warn("provider {}: reconciliation failed: {}", id,
                             to_string(err));
              });
        }
      });
      return rp;
    },
    [=](atom::heartbeat, const std::string& id,
        const heartbeat& hb) -> caf::result<double> {
      auto res = self->state.touch(id, hb);
      if (!res)
        return std::move(res.error());
      return *res;
    },
    [=](atom::deregister, const std::string& id, const std::string& key,
        bool on_purpose) -> caf::result<bool> {
      auto& st = self->state;
      if (auto err = st.check_key(key))
        return err;
      if (st.providers.count(id) == 0)
        return make_error(ec::not_found, "Provider not found");
      auto rp = self->make_response_promise<bool>();
      st.remove(id, on_purpose, move_reason::removed, true,
                [rp](const caf::error& err) mutable {
                  if (err)
                    rp.deliver(err);
                  else
                    rp.deliver(true);
                });
      return rp;
    },
    [=](atom::drain, const std::string& id,
        const drain_request& req) -> caf::result<provider> {
      auto& st = self->state;
      if (auto err = st.check_key(req.provider_key))
        return err;
      auto i = st.providers.find(id);
      if (i == st.providers.end())
        return make_error(ec::not_found, "Provider not found");
      auto next = *i->second.value;
      auto timeout = req.timeout > 0
                       ? req.timeout
                       : std::chrono::duration<double>(st.config.drain_timeout)
                           .count();
      next.status = provider_status::draining;
      next.drain_deadline = unix_now() + timeout;
      next.drain_by_operator = req.by_operator;
      auto json = std::make_shared<const std::string>(provider_json(next));
      auto rp = self->make_response_promise<provider>();
      st.write({store_change{provider_put_record(*json),
                             {image_op{{}, id, json}}}},
               [self, rp, id, next, timeout](const caf::error& err) mutable {
                 if (err) {
                   rp.deliver(err);
                   return;
                 }
                 auto& st = self->state;
                 auto i = st.providers.find(id);
                 if (i == st.providers.end()) {
                   rp.deliver(make_error(ec::not_found, "Provider not found"));
                   return;
                 }
                 // What changed meanwhile (heartbeats, runs) is kept.
                 auto now = *i->second.value;
                 now.status = provider_status::draining;
                 now.drain_deadline = next.drain_deadline;
                 now.drain_by_operator = next.drain_by_operator;
                 spdlog::info("provider {} id={}: draining for {:.0f} s ({} "
                              "bot members)",
                              now.name, id, timeout, now.active_runs);
                 st.set(i->second, now);
                 ++st.version;
                 if (st.stats)
                   ++st.stats->drains;
                 self->delayed_send(
                   self,
                   std::chrono::duration_cast<caf::timespan>(
                     std::chrono::duration<double>(timeout)),
                   atom::expire_v, id, now.drain_deadline);
                 rp.deliver(now);
                 if (now.active_runs == 0)
                   st.end_drain(id, false);
               });
      return rp;
    },
    [=](atom::get, const std::string& id) -> caf::result<provider> {
      auto& ps = self->state.providers;
      auto i = ps.find(id);
      if (i == ps.end())
        return make_error(ec::not_found, "Provider not found");
      return *i->second.value;
    },
    [=](atom::list) { return self->state.catalog(); },
    [=](atom::resolve, const std::string& bot, const std::string& preferred) {
      return self->state.place(bot, preferred);
    },
    [=](atom::stale, caf::timespan stale_after) {
      return self->state.stale(stale_after);
    },
    [=](atom::evict, const std::vector<std::string>& ids,
        caf::timespan stale_after) -> caf::result<std::vector<std::string>> {
      auto& st = self->state;
      auto evictable = st.evictable(ids, stale_after);
      if (evictable.empty())
        return evictable;
      store_batch batch;
      for (auto& id : evictable)
        batch.push_back(
          store_change{provider_del_record(id), {image_op{{}, id, nullptr}}});
      auto rp = self->make_response_promise<std::vector<std::string>>();
      st.write(std::move(batch), [self, rp, evictable,
                                  stale_after](const caf::error& err) mutable {
        if (err) {
          rp.deliver(err);
          return;
        }
        auto& st = self->state;
        std::vector<std::string> evicted;
        auto now = self->clock().now();
        for (auto& id : evictable) {
          auto i = st.providers.find(id);
          if (i == st.providers.end())
            continue;
          auto unseen = std::chrono::duration<double>(now - i->second.seen);
          spdlog::info("provider evicted: {} id={} unseen for {:.0f} s",
                       i->second.value->name, id, unseen.count());
          auto old = *i->second.value;
          st.erase(id);
          evicted.push_back(id);
          // Its bot members go elsewhere (SPEC §7); no tombstone: it was
          // not removed on purpose.
          if (st.directory)
            self->send(st.directory, atom::redispatch_v, old,
                       move_reason::evicted);
        }
        rp.deliver(std::move(evicted));
      });
      return rp;
    },
    [=](atom::flush) -> caf::result<uint64_t> {
      auto& st = self->state;
      auto batch = st.seen_batch();
      if (!batch.empty())
        self->send(st.store, atom::write_v, std::move(batch), atom::sweep_v);
      auto rp = self->make_response_promise<uint64_t>();
      self->request(st.store, st.config.store_timeout, atom::flush_v)
        .then([rp](uint64_t seq) mutable { rp.deliver(seq); },
              [rp](caf::error& err) mutable { rp.deliver(err); });
      return rp;
    },
    [=](atom::seen, const std::string& id) { self->state.mark_seen(id); },
    [=](atom::status, const std::string& id, provider_status status) {
      self->state.set_status(id, status);
    },
    [=](atom::runs, const std::string& id, uint64_t count) {
      auto& st = self->state;
      if (id.empty()) {
        // The directory's census at start-up is complete: a drain loaded
        // from disk whose provider runs nothing ends now, not at its
        // deadline.
        std::vector<std::string> idle;
        for (auto& [pid, e] : st.providers)
          if (e.value->status == provider_status::draining
              && e.value->active_runs == 0)
            idle.push_back(pid);
        for (auto& pid : idle)
          st.end_drain(pid, false);
        return;
      }
      auto i = st.providers.find(id);
      if (i == st.providers.end() || i->second.value->active_runs == count)
        return;
      auto next = *i->second.value;
      next.active_runs = count;
      // Not in the durable record: its rendered JSON stays as it is.
      i->second.value = std::make_shared<const provider>(std::move(next));
      ++st.version;
      if (count == 0
          && i->second.value->status == provider_status::draining)
        st.end_drain(id, false);
    },
    [=](atom::peers, lobby_directory_actor directory,
        dispatcher_actor dispatcher) {
      auto& st = self->state;
      st.directory = std::move(directory);
      st.dispatcher = std::move(dispatcher);
    },
    [=](atom::suspect, const std::string& id, uint64_t beats) {
      auto& st = self->state;
      auto i = st.providers.find(id);
      // Two intervals without a heartbeat (SPEC §7).
      if (i == st.providers.end() || i->second.beats != beats
          || i->second.value->status != provider_status::online)
        return;
      st.set_status(id, provider_status::suspect);
    },
    [=](atom::expire, const std::string& id, double deadline) {
      auto& st = self->state;
      auto i = st.providers.find(id);
      if (i == st.providers.end()
          || i->second.value->status != provider_status::draining
          || i->second.value->drain_deadline != deadline)
        return;
      st.end_drain(id, true);
    },
    [=](atom::remote, const remote_batch& batch) {
      self->state.apply_remote(batch);
    },
    [=](atom::flush, atom::sweep) {
      auto& st = self->state;
      self->delayed_send(self, st.config.flush_interval, atom::flush_v,
                         atom::sweep_v);
      auto batch = st.seen_batch();
      if (!batch.empty())
        self->send(st.store, atom::write_v, std::move(batch), atom::sweep_v);
    },
  };
}

} // namespace vb
