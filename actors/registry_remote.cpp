// The registry in cluster mode: providers other instances changed, applied
// without writing them (the instance that changed them did).
#include <set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/registry.hpp"
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

} // namespace vb
