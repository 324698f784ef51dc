// The registry's core (its state, indexes, listing, placement, store writes)
// and its behaviour table; each flow is in a registry_*.cpp of its own.
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
#include "model/journal_codec.hpp"
#include "model/snapshot_codec.hpp"

namespace vb {

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

double registry_state::lease_from_now() const {
  return unix_now()
         + std::chrono::duration<double>(config.stale_after).count();
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

void registry_state::flush_seen() {
  auto batch = seen_batch();
  if (!batch.empty())
    self->send(store, atom::write_v, std::move(batch), atom::sweep_v);
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
    self->state.flush_seen();
    self->quit(msg.reason);
  });
  st.init(std::move(initial));
  self->delayed_send(self, st.config.flush_interval, atom::flush_v,
                     atom::sweep_v);
  return {
    [=](atom::registration,
        const provider_registration& reg) -> caf::result<std::string> {
      auto& st = self->state;
      if (auto err = st.refuse(reg))
        return err;
      auto rp = self->make_response_promise<std::string>();
      st.enroll(reg, rp);
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
      st.deregister(id, on_purpose, rp);
      return rp;
    },
    [=](atom::drain, const std::string& id,
        const drain_request& req) -> caf::result<provider> {
      auto& st = self->state;
      if (auto err = st.check_key(req.provider_key))
        return err;
      if (st.providers.count(id) == 0)
        return make_error(ec::not_found, "Provider not found");
      auto rp = self->make_response_promise<provider>();
      st.drain(id, req, rp);
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
    [=](atom::place, const dispatch_request& req, const std::string& preferred,
        const std::string& last) -> caf::result<placed> {
      auto& st = self->state;
      auto found = st.place(req.bot_name, preferred);
      if (!found.known)
        return make_error(ec::not_found, "Bot not found");
      auto& c = found.candidates;
      // A moved member's old provider only after every other one.
      std::stable_partition(c.begin(), c.end(), [&](const provider_ptr& p) {
        return p->provider_id != last;
      });
      if (c.empty())
        return make_error(ec::unavailable,
                          "no provider of " + req.bot_name
                            + " takes joins now (draining, or at capacity)");
      if (!st.dispatcher)
        return make_error(ec::unavailable, "the dispatcher is not wired yet");
      // The dispatcher answers the lobby itself: no hop back through here.
      return self->delegate(st.dispatcher, atom::join_v, std::move(c), req);
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
      auto rp = self->make_response_promise<std::vector<std::string>>();
      st.evict(std::move(evictable), rp);
      return rp;
    },
    [=](atom::flush) -> caf::result<uint64_t> {
      auto& st = self->state;
      st.flush_seen();
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
      self->state.count_runs(id, count);
    },
    [=](atom::peers, lobby_directory_actor directory,
        dispatcher_actor dispatcher) {
      auto& st = self->state;
      st.directory = std::move(directory);
      st.dispatcher = std::move(dispatcher);
    },
    [=](atom::suspect, const std::string& id, uint64_t beats) {
      self->state.suspect(id, beats);
    },
    [=](atom::expire, const std::string& id, double deadline) {
      self->state.expire(id, deadline);
    },
    [=](atom::remote, const remote_batch& batch) {
      self->state.apply_remote(batch);
    },
    [=](atom::flush, atom::sweep) {
      auto& st = self->state;
      self->delayed_send(self, st.config.flush_interval, atom::flush_v,
                         atom::sweep_v);
      st.flush_seen();
    },
  };
}

} // namespace vb
