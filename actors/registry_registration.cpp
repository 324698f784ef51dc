// The registry's registration and deregistration (SPEC §3, §7): admission,
// identity, the durable write, reconciliation, and tombstones.
#include <algorithm>
#include <chrono>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/registry.hpp"
#include "actors/stats.hpp"
#include "model/clock.hpp"
#include "model/ids.hpp"
#include "model/journal_codec.hpp"
#include "model/snapshot_codec.hpp"

namespace vb {

// -- admission ----------------------------------------------------------------

bool registry_state::admit(double& retry_after) {
  if (!registrations) {
    auto rate = config.max_registrations_per_second;
    // A burst of the same size, and never less than one registration.
    registrations.emplace(rate, std::max(1.0, rate));
  }
  if (auto wait = registrations->take(self->clock().now())) {
    retry_after = *wait;
    return false;
  }
  return true;
}

caf::error registry_state::refuse(const provider_registration& reg) {
  // Heartbeats are never limited; registrations are (SPEC §7, herds).
  double retry_after = 0;
  if (!admit(retry_after)) {
    if (stats)
      ++stats->rate_limited;
    return make_error(ec::rate_limited, std::string{"Too many registrations"},
                      retry_after);
  }
  if (auto err = check_key(reg.provider_key))
    return err;
  if (!reg.provider_id.empty() && providers.count(reg.provider_id) == 0
      && is_removed(reg.provider_id, reg.instance_id)) {
    if (stats)
      ++stats->removed_answers;
    return make_error(ec::removed, "Provider was removed");
  }
  return {};
}

// -- tombstones ---------------------------------------------------------------

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

// -- registration -------------------------------------------------------------

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

void registry_state::enroll(const provider_registration& reg,
                            caf::typed_response_promise<std::string> rp) {
  auto p = std::make_shared<planned>(plan(reg));
  auto since = unix_now();
  auto runs = reg.has_runs
                ? std::make_shared<std::vector<std::string>>(reg.runs)
                : nullptr;
  store_batch batch;
  if (!p->replaces.empty())
    batch.push_back(store_change{provider_del_record(p->replaces),
                                 {image_op{{}, p->replaces, nullptr}}});
  batch.push_back(store_change{provider_put_record(*p->json),
                               {image_op{{}, p->value.provider_id, p->json}}});
  write(std::move(batch), [this, rp, p, runs, since](const caf::error& err) {
    enrolled(err, p, runs, since, rp);
  });
}

void registry_state::enrolled(const caf::error& err, std::shared_ptr<planned> p,
                              std::shared_ptr<std::vector<std::string>> runs,
                              double since,
                              caf::typed_response_promise<std::string> rp) {
  if (err) {
    auto& v = p->value;
    auto i = pending_endpoints.find({v.name, v.base_url});
    if (i != pending_endpoints.end() && i->second == v.provider_id)
      pending_endpoints.erase(i);
    rp.deliver(err);
    return;
  }
  auto id = upsert(std::move(*p));
  rp.deliver(id);
  // An HTTP provider that listed its runs (SPEC §7, reconciliation): the
  // lobbies keep the members it runs and dispatch the others again; it is
  // told to stop the runs no member holds.
  if (runs && directory)
    reconcile(id, *runs, since);
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

void registry_state::reconcile(const std::string& id,
                               const std::vector<std::string>& runs,
                               double since) {
  std::vector<bot_run> listed;
  for (auto& r : runs)
    listed.push_back(bot_run{r, {}, {}, {}, {}});
  self
    ->request(directory, config.peer_timeout, atom::reconcile_v, id,
              std::move(listed), since)
    .then(
      [this, id](std::vector<std::string>& unknown) {
        stop_unheld(id, unknown);
      },
      [id](caf::error& err) {
        spdlog::warn("provider {}: reconciliation failed: {}", id,
                     to_string(err));
      });
}

void registry_state::stop_unheld(const std::string& id,
                                 const std::vector<std::string>& runs) {
  auto i = providers.find(id);
  if (i == providers.end() || !dispatcher)
    return;
  spdlog::info("provider {} reconciled: {} runs no member holds are stopped",
               id, runs.size());
  for (auto& run : runs)
    self
      ->request(dispatcher, config.peer_timeout, atom::stop_v,
                *i->second.value, run)
      .then([](bool) {},
            [run](caf::error& err) {
              spdlog::warn("stop of run {} failed: {}", run, to_string(err));
            });
}

// -- deregistration -----------------------------------------------------------

void registry_state::deregister(const std::string& id, bool on_purpose,
                                caf::typed_response_promise<bool> rp) {
  remove(id, on_purpose, move_reason::removed, true,
         [rp](const caf::error& err) mutable {
           if (err)
             rp.deliver(err);
           else
             rp.deliver(true);
         });
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

} // namespace vb
