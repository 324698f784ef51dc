#include "actors/registry.hpp"

#include <algorithm>
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

std::vector<provider> load_providers(const std::string& dir,
                                     journal_store_seed& seed,
                                     server_stats* stats) {
  std::vector<provider> base;
  std::unique_ptr<provider_replay> replay;
  load_durable(
    dir, providers_file_name,
    [&](const std::string& text, uint64_t& seq, std::string& why) {
      base.clear();
      return decode_providers(text, base, why, &seq);
    },
    [&](const std::string& record, std::string& why) {
      if (!replay)
        replay = std::make_unique<provider_replay>(std::move(base));
      return replay->apply(record, why);
    },
    seed, stats);
  auto result = replay ? replay->result() : std::move(base);
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
    if (p.via == transport::caf)
      p.status = provider_status::unreachable;
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
  if (auto i = providers.find(id); i != providers.end())
    next.registered_at = i->second.value->registered_at;
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
  if (auto i = providers.find(id); i != providers.end()) {
    order = i->second.order;
    unindex(*i->second.value);
    providers.erase(i);
  } else {
    ++next_order;
  }
  index(next);
  entry e;
  e.seen = self->clock().now();
  e.order = order;
  e.json = std::move(p.json);
  e.value = std::make_shared<const provider>(std::move(next));
  providers.emplace(id, std::move(e));
  listing_changed();
  auto& v = *providers.at(id).value;
  spdlog::info("provider registered: {} ({}) id={} bots={}", v.name,
               v.base_url.empty() ? to_string(v.via) : v.base_url, id,
               v.bots.size());
  return id;
}

caf::expected<double> registry_state::touch(const std::string& id,
                                            const heartbeat& hb) {
  auto i = providers.find(id);
  if (i == providers.end())
    return make_error(ec::not_found, "Provider not found");
  auto next = *i->second.value;
  next.last_seen = unix_now();
  next.status = provider_status::online;
  ++version;
  if (hb.has_bots) {
    unindex(next);
    next.bots = hb.bots;
    index(next);
    changed_since_flush.insert(id);
  }
  set(i->second, std::move(next));
  i->second.seen = self->clock().now();
  seen_since_flush.insert(id);
  return i->second.value->last_seen;
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
  auto next = *i->second.value;
  next.last_seen = unix_now();
  next.status = provider_status::online;
  set(i->second, std::move(next));
  i->second.seen = self->clock().now();
  ++version;
  seen_since_flush.insert(id);
}

provider_list registry_state::resolve(const std::string& bot) const {
  std::vector<const entry*> found;
  if (auto i = by_bot.find(bot); i != by_bot.end())
    for (auto& id : i->second)
      found.push_back(&providers.at(id));
  // Online providers first, then the most recently seen.
  std::sort(found.begin(), found.end(), [](auto x, auto y) {
    auto xo = x->value->status == provider_status::online;
    auto yo = y->value->status == provider_status::online;
    if (xo != yo)
      return xo;
    return x->seen > y->seen;
  });
  provider_list result;
  result.reserve(found.size());
  for (auto e : found)
    result.push_back(e->value);
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
      if (auto err = st.check_key(reg.provider_key))
        return err;
      auto plan = std::make_shared<registry_state::planned>(st.plan(reg));
      store_batch batch;
      if (!plan->replaces.empty())
        batch.push_back(store_change{provider_del_record(plan->replaces),
                                     {image_op{{}, plan->replaces, nullptr}}});
      batch.push_back(store_change{
        provider_put_record(*plan->json),
        {image_op{{}, plan->value.provider_id, plan->json}}});
      auto rp = self->make_response_promise<std::string>();
      st.write(std::move(batch), [self, rp, plan](const caf::error& err) mutable {
        auto& st = self->state;
        if (err) {
          auto& v = plan->value;
          auto i = st.pending_endpoints.find({v.name, v.base_url});
          if (i != st.pending_endpoints.end() && i->second == v.provider_id)
            st.pending_endpoints.erase(i);
          rp.deliver(err);
          return;
        }
        rp.deliver(st.upsert(std::move(*plan)));
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
    [=](atom::deregister, const std::string& id,
        const std::string& key) -> caf::result<bool> {
      auto& st = self->state;
      if (auto err = st.check_key(key))
        return err;
      if (st.providers.count(id) == 0)
        return make_error(ec::not_found, "Provider not found");
      auto rp = self->make_response_promise<bool>();
      st.write({store_change{provider_del_record(id), {image_op{{}, id, nullptr}}}},
               [self, rp, id](const caf::error& err) mutable {
                 if (err) {
                   rp.deliver(err);
                   return;
                 }
                 if (self->state.erase(id))
                   spdlog::info("provider deregistered: id={}", id);
                 rp.deliver(true);
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
    [=](atom::resolve, const std::string& bot) {
      return self->state.resolve(bot);
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
          st.erase(id);
          evicted.push_back(id);
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
