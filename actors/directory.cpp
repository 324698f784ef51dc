// The lobby directory (actors/directory.hpp).
#include "actors/directory.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>
#include <unordered_set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/in_order.hpp"
#include "actors/journal_store.hpp"
#include "actors/stats.hpp"
#include "model/clock.hpp"
#include "model/ids.hpp"
#include "model/journal_codec.hpp"
#include "model/snapshot_codec.hpp"
#include "model/validate.hpp"
#include "actors/lobby_shared.hpp"

namespace vb {

lobby_directory_state::entry& lobby_directory_state::add(lobby_image value) {
  auto id = value.id;
  members += value.sessions.size();
  // A name another lobby has already (two instances created it at once)
  // stays that lobby's: this one is found by id.
  by_name.emplace(value.name, id);
  for (auto& m : value.sessions)
    index_member(m, id);
  auto actor = self->spawn<caf::linked>(
      lobby_fn, caf::actor_cast<lobby_directory_actor>(self), peers, value);
  auto& e = lobbies[id];
  e = entry{std::move(actor), std::move(value), next_order++};
  ++listing_version;
  publish_counts();
  return e;
}

lobby_directory_state::entry*
lobby_directory_state::find(const std::string& id) {
  auto i = lobbies.find(id);
  return i == lobbies.end() ? nullptr : &i->second;
}

void lobby_directory_state::update(const member_change& change) {
  auto e = find(change.lobby_id);
  if (e == nullptr)
    return;
  auto& ss = e->value.sessions;
  auto was_orphaned = !change.removed.empty()
                      && orphaned.count(change.removed) != 0;
  if (!change.removed.empty()) {
    auto i = std::find_if(ss.begin(), ss.end(), [&](const auto& m) {
      return m->value.session_id == change.removed;
    });
    if (i != ss.end()) {
      auto gone = (*i)->value;
      ss.erase(i);
      --members;
      unindex_member(gone);
      if (!change.added)
        report_runs(gone.provider_id);
      else if (change.added->value.provider_id != gone.provider_id)
        report_runs(gone.provider_id);
    }
  }
  if (change.added) {
    ss.push_back(change.added);
    index_member(change.added, change.lobby_id);
    ++members;
    report_runs(change.added->value.provider_id);
    // A member orphaned just now: a provider of its bot may have come back
    // online while the orphaning was being written, and that offer found
    // no orphan here yet. One more offer a moment later closes the gap
    // (with no candidate then, it waits for the next one, as ever).
    auto& a = change.added->value;
    if (a.is_bot && a.orphaned && !was_orphaned)
      self->delayed_send(self, orphan_recheck, atom::orphans_v,
                         std::vector<std::string>{a.bot_name});
  }
  ++listing_version;
  publish_counts();
}

void lobby_directory_state::index_member(
  const std::shared_ptr<const lobby_image::member>& m,
  const std::string& lobby_id) {
  auto& s = m->value;
  by_session[s.session_id] = lobby_id;
  if (!s.is_bot)
    return;
  if (s.orphaned)
    orphaned[s.session_id] = lobby_id;
  else if (!s.provider_id.empty())
    by_provider[s.provider_id][s.session_id] = placed{lobby_id, m};
}

void lobby_directory_state::unindex_member(const session& s) {
  by_session.erase(s.session_id);
  if (!s.is_bot)
    return;
  orphaned.erase(s.session_id);
  if (auto i = by_provider.find(s.provider_id); i != by_provider.end()) {
    i->second.erase(s.session_id);
    if (i->second.empty())
      by_provider.erase(i);
  }
}

void lobby_directory_state::report_runs(const std::string& provider_id) {
  if (provider_id.empty() || !peers.registry)
    return;
  auto i = by_provider.find(provider_id);
  uint64_t n = i == by_provider.end() ? 0 : i->second.size();
  self->send(peers.registry, atom::runs_v, provider_id, n);
}

void lobby_directory_state::apply_remote(const remote_batch& batch) {
  std::set<std::string> named;
  // Members by lobby, in the batch's order.
  std::map<std::string, remote_batch> routed;
  for (auto& c : batch.changes) {
    if (c.key.empty()) {
      spdlog::warn("lobby directory: a remote change without a key: skipped");
      continue;
    }
    if (!c.parent.empty()) {
      if (find(c.parent) == nullptr) {
        spdlog::warn("lobby directory: remote member {} of unknown lobby {}: "
                     "skipped",
                     c.key, c.parent);
        continue;
      }
      routed[c.parent].changes.push_back(c);
      continue;
    }
    named.insert(c.key);
    if (!c.json) {
      routed.erase(c.key);
      drop(c.key);
      continue;
    }
    // A lobby's header never changes once created.
    if (find(c.key) != nullptr)
      continue;
    lobby l;
    std::string why;
    if (!decode_header(*c.json, c.key, l, why)) {
      spdlog::warn("lobby directory: remote lobby {} skipped: {}", c.key, why);
      continue;
    }
    if (auto i = by_name.find(l.name); i != by_name.end())
      spdlog::warn("lobby directory: remote lobby {} is named '{}' as lobby "
                   "{} is: found by id only",
                   l.id, l.name, i->second);
    spdlog::info("lobby created elsewhere: '{}' id={}{}", l.name, l.id,
                 l.is_private ? " (private)" : "");
    add(to_image(std::move(l)));
  }
  if (batch.resync) {
    std::vector<std::string> gone;
    for (auto& [id, e] : lobbies)
      if (named.count(id) == 0)
        gone.push_back(id);
    for (auto& id : gone) {
      routed.erase(id);
      drop(id);
    }
    // Every lobby hears of the resync: bot members it does not name leave.
    for (auto& [id, e] : lobbies)
      routed[id].resync = true;
  }
  for (auto& [id, members] : routed)
    if (auto e = find(id))
      self->send(e->actor, atom::remote_v, std::move(members));
}

void lobby_directory_state::drop(const std::string& id) {
  auto i = lobbies.find(id);
  if (i == lobbies.end())
    return;
  auto& e = i->second;
  std::set<std::string> providers;
  for (auto& m : e.value.sessions) {
    unindex_member(m->value);
    --members;
    if (m->value.is_bot)
      providers.insert(m->value.provider_id);
  }
  if (auto n = by_name.find(e.value.name); n != by_name.end() && n->second == id)
    by_name.erase(n);
  spdlog::info("lobby removed elsewhere: '{}' id={} ({} members)",
               e.value.name, id, e.value.sessions.size());
  // Unlinked first: its exit is not the directory's. Its subscribers see
  // it go down.
  self->unlink_from(e.actor);
  self->send_exit(e.actor, caf::exit_reason::user_shutdown);
  lobbies.erase(i);
  for (auto& p : providers)
    report_runs(p);
  ++listing_version;
  publish_counts();
}

void lobby_directory_state::stop_strays(const std::string& provider_id,
                                        const std::vector<std::string>& runs) {
  // In cluster mode a cache cut off from etcd may lack members that other
  // instances committed: nothing is judged then, and the time starts again.
  if (stats && stats->store_unavailable()) {
    strays.erase(provider_id);
    return;
  }
  std::unordered_set<std::string> held;
  if (auto i = by_provider.find(provider_id); i != by_provider.end())
    for (auto& [sid, where] : i->second)
      held.insert(where.member->value.run_id);
  auto now = unix_now();
  auto& seen = strays[provider_id];
  std::unordered_map<std::string, double> next;
  std::vector<std::string> stop;
  for (auto& run : runs) {
    if (run.empty() || held.count(run) != 0)
      continue;
    auto j = seen.find(run);
    auto first = j == seen.end() ? now : j->second;
    if (now - first >= peers.stray_grace) {
      stop.push_back(run);
      first = now; // still listed after another grace: stopped again
    }
    next.emplace(run, first);
  }
  if (next.empty())
    strays.erase(provider_id);
  else
    seen = std::move(next);
  if (stop.empty())
    return;
  spdlog::warn("provider {} runs {} runs no bot member holds (for {:.0f} s "
               "or more): they are stopped",
               provider_id, stop.size(), peers.stray_grace);
  if (stats)
    stats->stray_stops += stop.size();
  stop_runs_of(self, peers, provider_id, std::move(stop));
}

void lobby_directory_state::redispatch(
  const std::unordered_map<std::string, placed>& sessions,
  const provider& old, move_reason why) {
  std::unordered_map<std::string, std::vector<std::string>> by_lobby;
  for (auto& [sid, where] : sessions)
    by_lobby[where.lobby_id].push_back(sid);
  for (auto& [lobby_id, ids] : by_lobby)
    if (auto e = find(lobby_id))
      self->send(e->actor, atom::redispatch_v, ids, old, why);
}

lobby_listing_ptr lobby_directory_state::listing() const {
  if (listing_cache && listing_cache->version == listing_version)
    return listing_cache;
  auto result = std::make_shared<lobby_listing>();
  result->version = listing_version;
  for (auto e : in_order(lobbies))
    if (!e->value.is_private)
      result->lobbies.push_back(to_lobby(e->value));
  listing_cache = std::move(result);
  return listing_cache;
}

const lobby_directory_state::entry*
lobby_directory_state::find_session(const std::string& session_id) const {
  auto i = by_session.find(session_id);
  if (i == by_session.end())
    return nullptr;
  auto e = lobbies.find(i->second);
  return e == lobbies.end() ? nullptr : &e->second;
}

void lobby_directory_state::create(const lobby_create& c, created_promise rp) {
  if (auto i = by_name.find(c.name); i != by_name.end()) {
    rp.deliver(lobby_created{to_lobby(lobbies.at(i->second).value), false});
    return;
  }
  if (auto i = creating.find(c.name); i != creating.end()) {
    // Being created moments ago: answered with that creation.
    i->second.push_back(std::move(rp));
    return;
  }
  if (lobbies.size() + creating.size() >= peers.max_lobbies) {
    rp.deliver(make_error(ec::full, "Too many lobbies"));
    return;
  }
  creating[c.name].push_back(std::move(rp));
  lobby l;
  l.id = new_uuid(rng);
  l.name = c.name;
  l.is_private = c.is_private;
  l.created_at = unix_now();
  auto json = std::make_shared<const std::string>(lobby_header_json(l));
  store_batch batch{store_change{lobby_record(l), {image_op{{}, l.id, json}}}};
  self->request(peers.store, store_timeout, atom::write_v, std::move(batch))
    .then(
      [this, l](uint64_t) {
        add(to_image(l));
        spdlog::info("lobby created: '{}' id={}{}", l.name, l.id,
                     l.is_private ? " (private)" : "");
        auto waiting = std::move(creating[l.name]);
        creating.erase(l.name);
        for (size_t k = 0; k < waiting.size(); ++k)
          waiting[k].deliver(lobby_created{l, k == 0});
      },
      [this, l](caf::error& raw) {
        auto err = as_store_error(raw);
        auto waiting = std::move(creating[l.name]);
        creating.erase(l.name);
        for (auto& w : waiting)
          w.deliver(err);
      });
}

void lobby_directory_state::publish_counts() {
  if (!stats)
    return;
  stats->lobbies = lobbies.size();
  stats->members = members;
  stats->orphaned = orphaned.size();
}

namespace {

/// Hands a request to the lobby `id` (its answer goes to the sender), or
/// answers 404 when there is none.
template <class T, class... Ts>
caf::result<T>
route_to_lobby(
  lobby_directory_actor::stateful_pointer<lobby_directory_state> self,
  const std::string& id, Ts&&... xs) {
  auto e = self->state.find(id);
  if (e == nullptr)
    return make_error(ec::not_found, "Lobby not found");
  return self->delegate(e->actor, std::forward<Ts>(xs)...);
}

} // namespace

lobby_directory_actor::behavior_type lobby_directory(
    lobby_directory_actor::stateful_pointer<lobby_directory_state> self,
    std::vector<lobby_image> initial, lobby_peers peers,
    std::shared_ptr<server_stats> stats) {
  auto& st = self->state;
  st.self = self;
  st.peers = std::move(peers);
  st.stats = std::move(stats);
  // Every lobby by id, as the watch adds them: two instances may have
  // created one name at once (cluster mode), and a restarted instance must
  // still serve both (the name finds the first).
  for (auto& l : initial)
    if (st.find(l.id) == nullptr)
      st.add(std::move(l));
  // The registry learns each provider's active runs, then that the census
  // is complete (an empty id).
  for (auto& [provider_id, sessions] : st.by_provider)
    st.report_runs(provider_id);
  if (st.peers.registry)
    self->send(st.peers.registry, atom::runs_v, std::string{}, uint64_t{0});
  return {
      [=](atom::create, const lobby_create& c) -> caf::result<lobby_created> {
        auto rp = self->make_response_promise<lobby_created>();
        self->state.create(c, rp);
        return rp;
      },
      [=](atom::list) { return self->state.listing(); },
      [=](atom::get, const std::string& id) {
        return route_to_lobby<lobby>(self, id, atom::get_v);
      },
      [=](atom::join, const std::string& id, const bot_join& j) {
        return route_to_lobby<session>(self, id, atom::join_v, j);
      },
      [=](atom::add, const std::string& id, const std::string& nick) {
        return route_to_lobby<person_session>(self, id, atom::add_v, nick);
      },
      [=](atom::remove, const std::string& id, const std::string& session_id) {
        return route_to_lobby<bool>(self, id, atom::remove_v, session_id);
      },
      [=](atom::leave, const leave_request& r) -> caf::result<std::string> {
        auto& st = self->state;
        const lobby_directory_state::entry* e = nullptr;
        if (r.lobby_id.empty()) {
          e = st.find_session(r.session_id);
          if (e == nullptr)
            return session_not_found(st.peers.stats);
        } else {
          e = st.find(r.lobby_id);
          if (e == nullptr)
            return make_error(ec::not_found, "Lobby not found");
        }
        auto lobby_id = e->value.id;
        auto rp = self->make_response_promise<std::string>();
        self->request(e->actor, persist_timeout, atom::remove_v, r.session_id)
            .then([rp, lobby_id](bool) mutable { rp.deliver(lobby_id); },
                  [rp](caf::error& err) mutable { rp.deliver(err); });
        return rp;
      },
      [=](atom::persist, const member_change& change) {
        self->state.update(change);
      },
      [=](atom::remote, const remote_batch& batch) {
        self->state.apply_remote(batch);
      },
      [=](atom::reconcile, const std::string& provider_id,
          const std::vector<bot_run>& runs,
          double since) -> caf::result<std::vector<std::string>> {
        auto& st = self->state;
        // The lobbies concerned: those with a bot of this provider, and
        // those its runs name.
        std::set<std::string> ids;
        if (auto i = st.by_provider.find(provider_id); i != st.by_provider.end())
          for (auto& [sid, where] : i->second)
            ids.insert(where.lobby_id);
        std::vector<std::string> run_ids;
        for (auto& r : runs) {
          run_ids.push_back(r.run_id);
          if (st.lobbies.count(r.lobby_id) != 0)
            ids.insert(r.lobby_id);
        }
        if (ids.empty())
          return run_ids;
        struct gather {
          size_t pending = 0;
          std::set<std::string> known;
          caf::error failed;
        };
        auto g = std::make_shared<gather>();
        g->pending = ids.size();
        auto rp = self->make_response_promise<std::vector<std::string>>();
        auto finish = [g, rp, run_ids]() mutable {
          if (--g->pending > 0)
            return;
          if (g->failed) {
            rp.deliver(g->failed);
            return;
          }
          std::vector<std::string> unknown;
          for (auto& r : run_ids)
            if (g->known.count(r) == 0)
              unknown.push_back(r);
          rp.deliver(std::move(unknown));
        };
        for (auto& id : ids)
          self
            ->request(st.lobbies[id].actor, persist_timeout,
                      atom::reconcile_v, provider_id, run_ids, since)
            .then(
              [g, finish](std::vector<std::string>& kept) mutable {
                g->known.insert(kept.begin(), kept.end());
                finish();
              },
              [g, finish](caf::error& err) mutable {
                g->failed = err;
                finish();
              });
        return rp;
      },
      [=](atom::redispatch, const provider& old, move_reason why) {
        auto& st = self->state;
        auto i = st.by_provider.find(old.provider_id);
        if (i == st.by_provider.end())
          return;
        spdlog::info("provider {} ({}): {} bot members are dispatched again",
                     old.provider_id, to_string(why), i->second.size());
        st.redispatch(i->second, old, why);
      },
      [=](atom::lost, const std::string& provider_id,
          const std::vector<std::string>& runs, double cutoff) {
        auto& st = self->state;
        st.stop_strays(provider_id, runs);
        auto i = st.by_provider.find(provider_id);
        if (i == st.by_provider.end())
          return;
        std::set<std::string> has(runs.begin(), runs.end());
        std::unordered_map<std::string, lobby_directory_state::placed> lost;
        for (auto& [sid, where] : i->second) {
          auto& s = where.member->value;
          if (has.count(s.run_id) == 0
              && std::max(s.joined_at, s.moved_at) < cutoff)
            lost.emplace(sid, where);
        }
        if (lost.empty())
          return;
        spdlog::warn("provider {} no longer runs {} of its bot members: they "
                     "are dispatched again",
                     provider_id, lost.size());
        provider old;
        old.provider_id = provider_id;
        st.redispatch(lost, old, move_reason::lost);
      },
      [=](atom::orphans, const std::vector<std::string>& bots) {
        auto& st = self->state;
        std::set<std::string> lobby_ids;
        for (auto& [sid, lobby_id] : st.orphaned)
          lobby_ids.insert(lobby_id);
        for (auto& id : lobby_ids)
          if (auto e = st.find(id))
            self->send(e->actor, atom::orphans_v, bots);
      },
      [=](atom::say, const std::string& lobby_id,
          const std::string& session_id, const std::string& text,
          const std::string& provider_id) {
        if (auto e = self->state.find(lobby_id))
          self->send(e->actor, atom::say_v, session_id, text, provider_id);
      },
      [=](atom::subscribe,
          const std::string& id) -> caf::result<lobby_actor> {
        auto e = self->state.find(id);
        if (e == nullptr)
          return make_error(ec::not_found, "Lobby not found");
        return e->actor;
      },
      [=](atom::seats) {
        for (auto& kv : self->state.lobbies)
          self->send(kv.second.actor, atom::seats_v);
      },
  };
}

} // namespace vb
