#include "actors/registry.hpp"

#include <algorithm>
#include <chrono>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/in_order.hpp"
#include "actors/snapshot_writer.hpp"
#include "actors/stats.hpp"
#include "model/clock.hpp"
#include "model/ids.hpp"
#include "model/snapshot_codec.hpp"

namespace vb {

std::vector<provider> load_providers(const std::string& dir) {
  std::vector<provider> result;
  if (!load_snapshot(dir, providers_file_name,
                     [&](const std::string& text, std::string& why) {
                       result.clear();
                       return decode_providers(text, result, why);
                     }))
    result.clear();
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

std::string registry_state::upsert(const provider_registration& reg) {
  // A known id wins; then the same endpoint; then the id the provider
  // remembers (it was evicted or this server lost it); then a new one.
  // CAF providers have no endpoint, so only their id identifies them.
  auto endpoint = reg.via == transport::http
                    ? by_endpoint.find({reg.name, reg.base_url})
                    : by_endpoint.end();
  std::string id;
  if (!reg.provider_id.empty() && providers.count(reg.provider_id) != 0) {
    id = reg.provider_id;
  } else if (endpoint != by_endpoint.end()) {
    id = endpoint->second;
  } else if (!reg.provider_id.empty()) {
    id = reg.provider_id;
  } else {
    id = new_uuid(rng);
  }
  auto now = unix_now();
  provider next;
  next.provider_id = id;
  next.name = reg.name;
  next.base_url = reg.base_url;
  next.description = reg.description;
  next.via = reg.via;
  next.bots = reg.bots;
  next.registered_at = now;
  next.last_seen = now;
  next.status = provider_status::online;
  auto order = next_order;
  if (auto i = providers.find(id); i != providers.end()) {
    next.registered_at = i->second.value->registered_at;
    order = i->second.order;
    unindex(*i->second.value);
    providers.erase(i);
  } else {
    ++next_order;
  }
  // Another entry with this endpoint is the same provider under an old id.
  if (endpoint = reg.via == transport::http
                   ? by_endpoint.find({reg.name, reg.base_url})
                   : by_endpoint.end();
      endpoint != by_endpoint.end() && endpoint->second != id)
    erase(endpoint->second);
  index(next);
  providers.emplace(id, make_entry(std::move(next), self->clock().now(), order));
  listing_changed();
  spdlog::info("provider registered: {} ({}) id={} bots={}", reg.name,
               reg.base_url.empty() ? to_string(reg.via) : reg.base_url, id,
               reg.bots.size());
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
  }
  set(i->second, std::move(next));
  i->second.seen = self->clock().now();
  snapshots.touch();
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
  snapshots.touch();
}

std::vector<provider> registry_state::resolve(const std::string& bot) const {
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
  std::vector<provider> result;
  for (auto e : found)
    result.push_back(*e->value);
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
registry_state::evict(const std::vector<std::string>& ids,
                      caf::timespan stale_after) {
  std::vector<std::string> evicted;
  auto now = self->clock().now();
  for (auto& id : ids) {
    auto i = providers.find(id);
    // A provider seen since the sweep asked is kept.
    if (i == providers.end() || now - i->second.seen < stale_after)
      continue;
    auto unseen = std::chrono::duration<double>(now - i->second.seen).count();
    spdlog::info("provider evicted: {} id={} unseen for {:.0f} s",
                 i->second.value->name, id, unseen);
    erase(id);
    evicted.push_back(id);
  }
  return evicted;
}

snapshot_job registry_state::snapshot() const {
  auto sorted = in_order(providers);
  std::vector<std::shared_ptr<const std::string>> rendered;
  rendered.reserve(sorted.size());
  for (auto e : sorted)
    rendered.push_back(e->json);
  return snapshot_job{[rendered = std::move(rendered)] {
    std::vector<const std::string*> parts;
    parts.reserve(rendered.size());
    for (auto& r : rendered)
      parts.push_back(r.get());
    return encode_provider_fragments(parts);
  }};
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
         snapshot_writer_actor writer, std::vector<provider> initial,
         registry_config config, std::shared_ptr<server_stats> stats) {
  auto& st = self->state;
  st.self = self;
  st.snapshots.init(std::move(writer), [self] { return self->state.snapshot(); });
  st.config = std::move(config);
  st.stats = std::move(stats);
  st.init(std::move(initial));
  self->delayed_send(self, st.config.flush_interval, atom::flush_v,
                     atom::sweep_v);
  return {
    [=](atom::registration,
        const provider_registration& reg) -> caf::result<std::string> {
      auto& st = self->state;
      if (auto err = st.check_key(reg.provider_key))
        return err;
      auto id = st.upsert(reg);
      auto rp = self->make_response_promise<std::string>();
      st.snapshots.commit(self, deliver_when_durable(rp, id));
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
      if (!st.erase(id))
        return make_error(ec::not_found, "Provider not found");
      spdlog::info("provider deregistered: id={}", id);
      auto rp = self->make_response_promise<bool>();
      st.snapshots.commit(self, deliver_when_durable(rp, true));
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
      auto evicted = st.evict(ids, stale_after);
      if (evicted.empty())
        return evicted;
      auto rp = self->make_response_promise<std::vector<std::string>>();
      st.snapshots.commit(self, deliver_when_durable(rp, evicted));
      return rp;
    },
    [=](atom::flush) -> caf::result<uint64_t> {
      auto rp = self->make_response_promise<uint64_t>();
      self->state.snapshots.barrier(self, rp);
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
      st.snapshots.flush(self);
    },
  };
}

} // namespace vb
