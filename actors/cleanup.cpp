#include "actors/cleanup.hpp"

#include <unordered_set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/stats.hpp"

namespace vb {

namespace {

/// Sweeps wait at most this long for the registry before giving up; the next
/// sweep tries again.
constexpr auto sweep_timeout = std::chrono::seconds(60);

/// How long an HTTP provider has to answer its probe before eviction.
constexpr auto probe_timeout = std::chrono::seconds(5);

} // namespace

sweep_decision cleanup_state::decide(const stale_report& report,
                                     caf::actor_clock::time_point now) {
  sweep_decision result;
  // Forget providers that were seen again since the guard held them.
  std::unordered_set<std::string> stale_ids;
  for (auto& e : report.entries)
    stale_ids.insert(e.provider_id);
  for (auto i = held_since.begin(); i != held_since.end();)
    i = stale_ids.count(i->first) == 0 ? held_since.erase(i) : std::next(i);
  auto n = report.entries.size();
  auto mass = n > 1
              && static_cast<double>(n)
                   > config.max_evict_fraction
                       * static_cast<double>(report.total);
  if (!mass) {
    for (auto& e : report.entries) {
      result.evict.push_back(e.provider_id);
      held_since.erase(e.provider_id);
    }
    return result;
  }
  // The guard holds: evict only those held for a further stale_after.
  for (auto& e : report.entries) {
    auto [i, added] = held_since.emplace(e.provider_id, now);
    if (!added && now - i->second >= config.stale_after) {
      result.evict.push_back(e.provider_id);
      held_since.erase(i);
    } else {
      ++result.held_count;
    }
  }
  result.held = result.held_count > 0;
  return result;
}

void cleanup_state::probe_then_evict(cleanup_actor::pointer self,
                                     std::vector<stale_entry> victims) {
  std::vector<std::string> ids;
  std::vector<stale_entry> probes;
  for (auto& v : victims) {
    if (dispatcher && v.via == transport::http && !v.base_url.empty())
      probes.push_back(v);
    else
      ids.push_back(v.provider_id);
  }
  if (probes.empty())
    return evict(self, std::move(ids));
  // Probe all at once; evict when the last answer (or timeout) is in.
  auto left = std::make_shared<size_t>(probes.size());
  auto doomed = std::make_shared<std::vector<std::string>>(std::move(ids));
  for (auto& v : probes) {
    provider p;
    p.provider_id = v.provider_id;
    p.base_url = v.base_url;
    p.via = v.via;
    auto one_done = [this, self, left, doomed] {
      if (--*left == 0)
        evict(self, std::move(*doomed));
    };
    self->request(dispatcher, probe_timeout, atom::probe_v, p)
      .then(
        [id = v.provider_id, doomed, one_done](bool alive) {
          if (alive) {
            // An answer counts as seen: the dispatcher told the registry.
            spdlog::info("cleanup: provider {} answered its probe: kept", id);
          } else {
            doomed->push_back(id);
          }
          one_done();
        },
        [id = v.provider_id, doomed, one_done](caf::error&) {
          doomed->push_back(id);
          one_done();
        });
  }
}

void cleanup_state::evict(cleanup_actor::pointer self,
                          std::vector<std::string> ids) {
  if (ids.empty()) {
    sweeping = false;
    return;
  }
  self
    ->request(registry, sweep_timeout, atom::evict_v, std::move(ids),
              config.stale_after)
    .then(
      [this](const std::vector<std::string>& evicted) {
        sweeping = false;
        if (stats)
          stats->evictions += evicted.size();
        if (!evicted.empty())
          spdlog::info("cleanup: evicted {} stale providers", evicted.size());
      },
      [this](caf::error& err) {
        sweeping = false;
        spdlog::error("cleanup: eviction failed: {}", to_string(err));
      });
}

cleanup_actor::behavior_type
cleanup(cleanup_actor::stateful_pointer<cleanup_state> self,
        registry_actor registry, cleanup_config config,
        std::shared_ptr<server_stats> stats, dispatcher_actor dispatcher) {
  self->state.registry = std::move(registry);
  self->state.dispatcher = std::move(dispatcher);
  self->state.config = config;
  self->state.stats = std::move(stats);
  self->delayed_send(self, config.interval, atom::sweep_v);
  return {
    [=](atom::sweep) {
      auto& st = self->state;
      // Re-arm first, so a slow or failed sweep never stops the timer.
      self->delayed_send(self, st.config.interval, atom::sweep_v);
      if (st.sweeping)
        return;
      // Cluster mode: one instance sweeps at a time, the one holding the
      // sweeper key (cluster/membership.cpp).
      if (st.stats && !st.stats->sweeper.load(std::memory_order_relaxed))
        return;
      st.sweeping = true;
      self
        ->request(st.registry, sweep_timeout, atom::stale_v,
                  st.config.stale_after)
        .then(
          [=](const stale_report& report) {
            auto& st = self->state;
            auto d = st.decide(report, self->clock().now());
            if (d.held) {
              // Counted before it is logged: a reader who sees the line
              // sees the count.
              if (st.stats)
                ++st.stats->held_sweeps;
              spdlog::warn("cleanup: {} of {} providers are stale, more than "
                           "{:.0f}%; holding back {} (a network blip is not a "
                           "dead fleet)",
                           report.entries.size(), report.total,
                           st.config.max_evict_fraction * 100, d.held_count);
            }
            std::vector<stale_entry> victims;
            for (auto& id : d.evict)
              for (auto& e : report.entries)
                if (e.provider_id == id)
                  victims.push_back(e);
            st.probe_then_evict(self, std::move(victims));
          },
          [=](caf::error& err) {
            self->state.sweeping = false;
            spdlog::error("cleanup: sweep failed: {}", to_string(err));
          });
    },
  };
}

} // namespace vb
