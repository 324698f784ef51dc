#include "actors/lobby.hpp"

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

namespace vb {

namespace {


/// How long a lobby or the directory waits for the store to make a change
/// durable, and the directory for a lobby's reconciliation.
constexpr auto store_timeout = std::chrono::seconds(60);
constexpr auto persist_timeout = store_timeout + std::chrono::seconds(5);

/// A store that did not answer in time: the change is not durable.
caf::error as_store_error(caf::error err) {
  if (err == caf::sec::request_timeout)
    return make_error(ec::storage_failed, "the store did not answer");
  return err;
}

/// A session not found here. In cluster mode, while this instance cannot
/// reach etcd (or just woke from a pause), its cache may not have seen the
/// session yet: 503 then, so the client retries, rather than a wrong 404.
caf::error session_not_found(const std::shared_ptr<server_stats>& stats) {
  if (stats && stats->store_unavailable())
    return make_error(ec::storage_failed,
                      "cluster store: etcd is unavailable or this instance "
                      "holds no live lease (retry later)");
  return make_error(ec::not_found, "Session not found");
}

/// The store change of a bot member joining or leaving a lobby.
/// The image shares the member with the lobby (rendered when a snapshot
/// is written); the record carries its JSON.
store_change join_change(const std::string& lobby_id,
                         const std::shared_ptr<const lobby_image::member>& m) {
  return store_change{
    join_record(lobby_id, session_json(m->value)),
    {image_op{lobby_id, m->value.session_id, nullptr, shared_session(m)}}};
}

/// A new bot member's change in cluster mode: it also commits the
/// reservation of its name (store_claim).
store_change claimed_join_change(
  const std::string& lobby_id,
  const std::shared_ptr<const lobby_image::member>& m) {
  auto c = join_change(lobby_id, m);
  auto& s = m->value;
  c.claims.push_back(store_claim{lobby_id, s.bot_name, s.nick, s.session_id,
                                 std::make_shared<const std::string>(
                                   session_json(s))});
  return c;
}

store_change leave_change(const std::string& lobby_id,
                          const std::string& session_id) {
  return store_change{leave_record(lobby_id, session_id),
                      {image_op{lobby_id, session_id, nullptr}}};
}

/// One lobby of a lobbies snapshot from its parts (a header, members),
/// through the validated snapshot decoder; false (and `why`) unless it is
/// exactly one lobby, `id`, with as many members as given.
bool decode_lobby(const std::string& header,
                  std::vector<const std::string*> sessions,
                  const std::string& id, lobby& out, std::string& why) {
  auto n = sessions.size();
  std::vector<lobby> ls;
  if (!decode_lobbies(encode_lobby_parts({lobby_parts{&header,
                                                      std::move(sessions)}},
                                         0),
                      ls, why))
    return false;
  if (ls.size() != 1 || ls[0].id != id || ls[0].sessions.size() != n) {
    why = "not one lobby with the id of its key";
    return false;
  }
  out = std::move(ls[0]);
  return true;
}

/// A lobby header from its JSON (lobby_header_json), without sessions.
bool decode_header(const std::string& json, const std::string& id, lobby& out,
                   std::string& why) {
  if (!decode_lobby(json, {}, id, out, why))
    return false;
  out.sessions.clear();
  return true;
}

/// A member of lobby `lobby_id` from its JSON (session_json).
bool decode_member(const std::string& json, const std::string& lobby_id,
                   const std::string& session_id, session& out,
                   std::string& why) {
  lobby header;
  header.id = lobby_id;
  header.name = lobby_id;
  lobby l;
  if (!decode_lobby(lobby_header_json(header), {&json}, lobby_id, l, why))
    return false;
  if (!session_id.empty() && l.sessions[0].session_id != session_id) {
    why = "its session_id is not its key";
    return false;
  }
  out = std::move(l.sessions[0]);
  return true;
}

/// A request that timed out while calling a provider is a provider that
/// cannot be reached now.
caf::error as_join_error(const caf::error& err) {
  if (err == caf::sec::request_timeout)
    return make_error(ec::unavailable, "Bot provider did not answer in time");
  return err;
}

/// Tells a provider, by id, to stop these runs, without waiting: the
/// registry gives the provider, the dispatcher calls it. Failures are
/// logged (a run left over is stopped at a later heartbeat as a stray).
template <class Self>
void stop_runs_of(Self* self, const lobby_peers& peers,
                  const std::string& provider_id,
                  std::vector<std::string> runs) {
  self->request(peers.registry, peers.timeout, atom::get_v, provider_id)
    .then(
      [self, peers, runs](provider& p) {
        for (auto& run : runs)
          self->request(peers.dispatcher, peers.timeout, atom::stop_v, p, run)
            .then([](bool) {},
                  [run](caf::error& err) {
                    spdlog::warn("stop of run {} failed: {}", run,
                                 to_string(err));
                  });
      },
      [provider_id, runs](caf::error&) {
        spdlog::warn("stop of {} runs: provider {} is gone", runs.size(),
                     provider_id);
      });
}

} // namespace

std::vector<lobby_image> load_lobbies(const std::string& dir,
                                      journal_store_seed& seed,
                                      server_stats* stats) {
  std::vector<lobby> base;
  std::unique_ptr<lobby_replay> replay;
  load_durable(
    dir, lobbies_file_name,
    [&](const std::string& text, uint64_t& seq, std::string& why) {
      base.clear();
      return decode_lobbies(text, base, why, &seq);
    },
    [&](const std::string& record, std::string& why) {
      return replay->apply(record, why);
    },
    seed, stats,
    [&](std::vector<const std::string*> payloads) {
      replay = std::make_unique<lobby_replay>(std::move(base));
      replay->preparse(std::move(payloads));
    });
  auto loaded = replay ? replay->result() : std::move(base);
  seed.render = render_lobbies;
  size_t bots = 0;
  size_t entries = loaded.size();
  for (auto& l : loaded)
    entries += l.sessions.size();
  seed.image.reserve(entries);
  std::vector<lobby_image> result;
  result.reserve(loaded.size());
  for (auto& l : loaded) {
    seed.image.apply(image_op{
      {}, l.id, std::make_shared<const std::string>(lobby_header_json(l))});
    result.push_back(to_image(std::move(l)));
    for (auto& m : result.back().sessions) {
      ++bots;
      seed.image.apply(image_op{result.back().id, m->value.session_id, nullptr,
                                shared_session(m)});
    }
  }
  spdlog::info("loaded {} lobbies with {} bot members from {}/{}",
               result.size(), bots, dir, lobbies_file_name);
  return result;
}

std::shared_ptr<const session>
shared_session(const std::shared_ptr<const lobby_image::member>& m) {
  return std::shared_ptr<const session>(m, &m->value);
}

lobby to_lobby(const lobby_image& img, members_view view) {
  lobby result;
  result.id = img.id;
  result.name = img.name;
  result.is_private = img.is_private;
  result.created_at = img.created_at;
  if (view == members_view::none)
    return result;
  result.sessions.reserve(img.sessions.size());
  for (auto& m : img.sessions)
    if (view == members_view::all || m->value.is_bot)
      result.sessions.push_back(m->value);
  return result;
}

std::vector<lobby_image> to_images(std::vector<lobby> ls) {
  std::vector<lobby_image> result;
  result.reserve(ls.size());
  for (auto& l : ls)
    result.push_back(to_image(std::move(l)));
  return result;
}

lobby_image to_image(lobby value) {
  lobby_image result;
  result.id = std::move(value.id);
  result.name = std::move(value.name);
  result.is_private = value.is_private;
  result.created_at = value.created_at;
  result.sessions.reserve(value.sessions.size());
  for (auto& s : value.sessions)
    result.sessions.push_back(make_member(std::move(s)));
  return result;
}

// -- lobby --------------------------------------------------------------------

std::shared_ptr<const lobby_image::member> make_member(session s) {
  return std::make_shared<const lobby_image::member>(
    lobby_image::member{std::move(s)});
}

void lobby_state::join(const bot_join& j, session_promise rp) {
  join_key key{j.bot_name, j.nick};
  if (auto i = pending.find(key); i != pending.end()) {
    // The same join is in flight: share its answer.
    i->second.push_back(std::move(rp));
    return;
  }
  if (peers.claims) {
    // Cluster mode: etcd decides, never this instance's cache (which may
    // not have seen another instance's leave yet): the reservation answers
    // the member that holds the name, or makes the name ours.
    if (bots.count(key) == 0 && full()) {
      rp.deliver(make_error(ec::full, "Lobby is full"));
      return;
    }
    pending[key].push_back(std::move(rp));
    reserve(key, j, new_uuid(rng));
    return;
  }
  if (auto i = bots.find(key); i != bots.end()) {
    rp.deliver(i->second->value);
    // Asked for again while orphaned: worth another try at once.
    if (i->second->value.orphaned) {
      provider old;
      old.provider_id = i->second->value.provider_id;
      move(i->second, old, move_reason::orphan);
    }
    return;
  }
  if (full()) {
    rp.deliver(make_error(ec::full, "Lobby is full"));
    return;
  }
  pending[key].push_back(std::move(rp));
  place(key, j, new_uuid(rng));
}

void lobby_state::place(const join_key& key, const bot_join& j,
                        const std::string& session_id) {
  self
    ->request(peers.registry, peers.timeout, atom::resolve_v, j.bot_name,
              j.provider_id)
    .then(
      [this, key, j, session_id](placement& found) {
        if (!found.known || found.candidates.empty())
          release(j.bot_name, j.nick, session_id);
        if (!found.known)
          return finish(key, make_error(ec::not_found, "Bot not found"), {});
        if (found.candidates.empty())
          return finish(key,
                        make_error(ec::unavailable,
                                   "no provider of " + j.bot_name
                                     + " takes joins now (draining, or at "
                                       "capacity)"),
                        {});
        start_dispatch(key, j, session_id, std::move(found.candidates));
      },
      [this, key, j, session_id](caf::error& err) {
        release(j.bot_name, j.nick, session_id);
        finish(key, err, {});
      });
}

void lobby_state::reserve(const join_key& key, const bot_join& j,
                          const std::string& session_id) {
  // Cluster mode: the name first, so that two instances never dispatch the
  // same (lobby, bot, nick) at once (design §4.3).
  self
    ->request(peers.claims, peers.dispatch_wait * 2, atom::reserve_v,
              value.id, j.bot_name, j.nick, session_id)
    .then(
      [this, key, j, session_id](std::string& existing) {
        if (existing.empty())
          return place(key, j, session_id);
        // A member holds it (made here or on another instance: then it
        // arrives here through the store's watch): that is the answer.
        session s;
        std::string why;
        if (!decode_member(existing, value.id, {}, s, why))
          return finish(key,
                        make_error(ec::storage_failed,
                                   "cluster store: a reservation that does "
                                   "not load: " + why),
                        {});
        // Asked for again while orphaned: worth another try at once.
        if (auto i = bots.find(key);
            i != bots.end() && i->second->value.session_id == s.session_id
            && i->second->value.orphaned) {
          provider old;
          old.provider_id = i->second->value.provider_id;
          move(i->second, old, move_reason::orphan);
        }
        finish(key, {}, s);
      },
      [this, key](caf::error& err) { finish(key, as_store_error(err), {}); });
}

void lobby_state::release(const std::string& bot_name, const std::string& nick,
                          const std::string& session_id) {
  if (peers.claims)
    caf::anon_send(peers.claims, atom::leave_v, value.id, bot_name, nick,
                   session_id);
}

void lobby_state::start_dispatch(const join_key& key, const bot_join& j,
                                 const std::string& session_id,
                                 provider_list candidates) {
  dispatch(
    dispatch_request{j.bot_name, value.id, session_id, j.nick},
    std::move(candidates), 0,
    [this, key, j, session_id](const provider& p, std::string run_id) {
      // The record the bot's lobby events go out with.
      learned(p);
      session s;
      s.session_id = session_id;
      s.nick = j.nick;
      s.is_bot = true;
      s.bot_name = j.bot_name;
      s.provider_id = p.provider_id;
      s.run_id = std::move(run_id);
      s.joined_at = unix_now();
      accepted(key, std::move(s));
    },
    [this, key, j, session_id](const caf::error& err) {
      release(j.bot_name, j.nick, session_id);
      finish(key, err, {});
    });
}

void lobby_state::dispatch(dispatch_request req, provider_list candidates,
                           size_t attempt, accepted_fn ok, failed_fn fail) {
  auto pp = candidates[attempt];
  self->request(peers.dispatcher, peers.dispatch_wait, atom::join_v, *pp, req)
    .then(
      [pp, ok](std::string& run_id) {
        // (The dispatcher told the registry the provider was seen.)
        ok(*pp, std::move(run_id));
      },
      [this, req, candidates, attempt, ok, fail](caf::error& raw) {
        auto err = as_join_error(raw);
        auto& p = *candidates[attempt];
        spdlog::warn("dispatch of {} into lobby {} via provider {} failed: {}",
                     req.bot_name, value.id, p.name, to_string(err));
        // (The dispatcher told the registry if the provider was
        // unreachable.) Failover: a provider that could not be reached
        // (refused, 5xx, timed out) is followed by the next candidate; a
        // rejection (4xx) is an answer.
        auto next = attempt + 1;
        if (code_of(err) == ec::unavailable && next < candidates.size()
            && next <= peers.failover_attempts) {
          if (peers.stats)
            ++peers.stats->failovers;
          return dispatch(req, candidates, next, ok, fail);
        }
        fail(err);
      });
}

void lobby_state::move(std::shared_ptr<const lobby_image::member> m,
                       provider old, move_reason why) {
  auto sid = m->value.session_id;
  if (!moving.insert(sid).second)
    return;
  auto bot = m->value.bot_name;
  spdlog::info("lobby {}: bot {} as '{}' (session {}) is dispatched again: {}",
               value.id, bot, m->value.nick, sid, to_string(why));
  // Whether the member is still the one this move started from.
  auto current = [this, sid, m]() {
    auto now = find_member(sid);
    return now && now.get() == m.get();
  };
  // A provider drained past its timeout, or removed on purpose, may still
  // run the old one: told to stop it once the member moved, or found no new
  // home (SPEC §7: its drain is over; a bot is never in a lobby twice).
  auto stop_old = [this, m, old, why] {
    if ((why != move_reason::drained && why != move_reason::removed)
        || old.provider_id.empty() || m->value.run_id.empty())
      return;
    self
      ->request(peers.dispatcher, peers.dispatch_wait, atom::stop_v, old,
                m->value.run_id)
      .then([](bool) {},
            [run = m->value.run_id](caf::error& err) {
              spdlog::warn("stop of run {} failed: {}", run, to_string(err));
            });
  };
  auto orphan = [this, sid, m, current, stop_old](const caf::error& err) {
    moving.erase(sid);
    if (!current())
      return;
    stop_old();
    if (m->value.orphaned)
      return; // still orphaned; tried again when a provider comes
    spdlog::warn("lobby {}: bot {} as '{}' is orphaned: {}", value.id,
                 m->value.bot_name, m->value.nick, to_string(err));
    auto s = m->value;
    s.orphaned = true;
    auto now = make_member(std::move(s));
    write({leave_change(value.id, m->value.session_id), join_change(value.id, now)},
          [this, now, current](const caf::error& err) {
            if (err) {
              spdlog::warn("lobby {}: orphaned mark of {} not written: {}",
                           value.id, now->value.session_id, to_string(err));
              return;
            }
            if (current())
              replace_member(now, "member_orphaned");
          });
  };
  self->request(peers.registry, peers.timeout, atom::resolve_v, bot,
                std::string{})
    .then(
      [this, m, old, sid, current, orphan, stop_old](placement& found) {
        // Another provider first; the one it leaves only as the last.
        provider_list candidates;
        provider_ptr same;
        for (auto& p : found.candidates)
          if (p->provider_id == old.provider_id)
            same = p;
          else
            candidates.push_back(p);
        if (same)
          candidates.push_back(same);
        if (candidates.empty())
          return orphan(make_error(ec::unavailable, "no provider of "
                                                      + m->value.bot_name
                                                      + " can take it"));
        auto& s = m->value;
        dispatch(
          dispatch_request{s.bot_name, value.id, s.session_id, s.nick},
          std::move(candidates), 0,
          [this, m, sid, current, stop_old](const provider& p,
                                            std::string run_id) {
            learned(p);
            auto s = m->value;
            s.provider_id = p.provider_id;
            s.run_id = std::move(run_id);
            s.orphaned = false;
            s.moved_at = unix_now();
            auto now = make_member(std::move(s));
            if (!current()) {
              // It left meanwhile: the new run has no member.
              moving.erase(sid);
              stop_run(now->value);
              forget_unused_provider(p.provider_id);
              return;
            }
            write({leave_change(value.id, sid), join_change(value.id, now)},
                  [this, now, sid, current, stop_old](const caf::error& err) {
                    moving.erase(sid);
                    if (err || !current()) {
                      spdlog::warn("lobby {}: move of {} not applied: {}",
                                   value.id, sid,
                                   err ? to_string(err) : "it left");
                      stop_run(now->value);
                      forget_unused_provider(now->value.provider_id);
                      return;
                    }
                    replace_member(now, "member_moved");
                    if (peers.stats)
                      ++peers.stats->redispatches;
                    spdlog::info("lobby {}: bot {} as '{}' moved to provider "
                                 "{} (run {})",
                                 value.id, now->value.bot_name,
                                 now->value.nick, now->value.provider_id,
                                 now->value.run_id);
                    stop_old();
                  });
          },
          orphan);
      },
      [orphan](caf::error& err) { orphan(err); });
}

void lobby_state::replace_member(
  const std::shared_ptr<const lobby_image::member>& now, const char* event) {
  auto& s = now->value;
  std::string old_provider;
  for (auto& m : value.sessions)
    if (m->value.session_id == s.session_id) {
      // The new member's provider record (learned) stays for add_bot.
      old_provider = m->value.provider_id;
      drop_bot(m->value, false);
      m = now;
      break;
    }
  add_bot(join_key{s.bot_name, s.nick}, now);
  if (!old_provider.empty())
    forget_unused_provider(old_provider);
  emit(event, s);
  notify(member_change{value.id, now, s.session_id});
}

void lobby_state::accepted(const join_key& key, session s) {
  // A member of the same bot and nick came from another instance's store
  // (the watch) while this join was dispatched: its member is the answer,
  // and this run goes. With reservations (the cluster store) that cannot
  // happen: the name was ours before the dispatch.
  if (auto i = bots.find(key); i != bots.end() && !peers.claims) {
    stop_run(s);
    forget_unused_provider(s.provider_id);
    release(s.bot_name, s.nick, s.session_id);
    auto existing = i->second->value;
    return finish(key, {}, existing);
  }
  auto m = make_member(std::move(s));
  write({peers.claims ? claimed_join_change(value.id, m)
                      : join_change(value.id, m)},
        [this, key, m](const caf::error& err) {
    auto& s = m->value;
    if (err) {
      // Not on disk: the member never existed; the provider's run goes.
      spdlog::warn("bot {} as '{}' in lobby {} not added: {}", s.bot_name,
                   s.nick, value.id, to_string(err));
      stop_run(s);
      forget_unused_provider(s.provider_id);
      release(s.bot_name, s.nick, s.session_id);
      return finish(key, err, {});
    }
    insert_bot(m);
    finish(key, {}, s);
  });
}

void lobby_state::insert_bot(std::shared_ptr<const lobby_image::member> m) {
  auto& s = m->value;
  add_bot(join_key{s.bot_name, s.nick}, m);
  value.sessions.push_back(m);
  spdlog::info("bot joined: {} as '{}' in lobby {} (provider {}, run {})",
               s.bot_name, s.nick, value.id, s.provider_id, s.run_id);
  emit("member_joined", s);
  notify(member_change{value.id, std::move(m), {}});
}

void lobby_state::apply_remote(const remote_batch& batch) {
  std::set<std::string> named;
  for (auto& c : batch.changes) {
    if (c.parent != value.id || c.key.empty()) {
      spdlog::warn("lobby {}: remote change '{}/{}' is not one of its "
                   "members: skipped",
                   value.id, c.parent, c.key);
      continue;
    }
    named.insert(c.key);
    if (!c.json) {
      // Its provider is told to stop the run by the instance that removed
      // it.
      remove_member(c.key);
      continue;
    }
    session s;
    std::string why;
    if (!decode_member(*c.json, value.id, c.key, s, why)) {
      spdlog::warn("lobby {}: remote member {} skipped: {}", value.id, c.key,
                   why);
      continue;
    }
    if (!s.is_bot) {
      spdlog::warn("lobby {}: remote member {} skipped: not a bot", value.id,
                   c.key);
      continue;
    }
    auto old = find_member(c.key);
    if (!old) {
      if (bots.count(join_key{s.bot_name, s.nick}) != 0)
        spdlog::warn("lobby {}: remote member {} is bot {} as '{}' again",
                     value.id, c.key, s.bot_name, s.nick);
      insert_bot(make_member(std::move(s)));
      continue;
    }
    // The same member again (a resync, an echo) changes nothing.
    if (session_json(old->value) == session_json(s))
      continue;
    auto event = s.orphaned && !old->value.orphaned ? "member_orphaned"
                                                    : "member_moved";
    replace_member(make_member(std::move(s)), event);
  }
  if (!batch.resync)
    return;
  std::vector<std::string> gone;
  for (auto& m : value.sessions)
    if (m->value.is_bot && named.count(m->value.session_id) == 0)
      gone.push_back(m->value.session_id);
  for (auto& sid : gone)
    remove_member(sid);
}

void lobby_state::write(store_batch batch,
                        std::function<void(const caf::error&)> done) {
  self->request(peers.store, store_timeout, atom::write_v, std::move(batch))
    .then([done](uint64_t) { done({}); },
          [done](caf::error& err) { done(as_store_error(err)); });
}

void lobby_state::notify(member_change change) {
  self->send(directory, atom::persist_v, std::move(change));
}

void lobby_state::stop_run(const session& s) {
  stop_runs_of(self, peers, s.provider_id, {s.run_id});
}

void lobby_state::finish(const join_key& key, const caf::error& err,
                         const session& s) {
  auto i = pending.find(key);
  if (i == pending.end())
    return;
  auto waiting = std::move(i->second);
  pending.erase(i);
  for (auto& rp : waiting) {
    if (err)
      rp.deliver(err);
    else
      rp.deliver(s);
  }
}

session lobby_state::add_person(const std::string& nick) {
  session s;
  s.session_id = new_uuid(rng);
  s.nick = nick;
  s.joined_at = unix_now();
  auto m = make_member(s);
  value.sessions.push_back(m);
  spdlog::info("joined: '{}' in lobby {} (session {})", nick, value.id,
               s.session_id);
  emit("member_joined", s);
  notify(member_change{value.id, std::move(m), {}});
  return s;
}

void lobby_state::subscribe(lobby_subscriber_actor sub) {
  if (!sub)
    return;
  self->monitor(sub);
  // The members first: every later event is sent after this message, so
  // the subscriber sees them in order.
  self->send(sub, atom::subscribe_v, to_lobby(value));
  subscribers.push_back(std::move(sub));
  spdlog::debug("lobby {}: subscriber added ({} live)", value.id,
                subscribers.size());
}

void lobby_state::unsubscribe(const caf::actor_addr& who) {
  auto i = std::find_if(subscribers.begin(), subscribers.end(),
                        [&](const auto& s) { return s.address() == who; });
  if (i == subscribers.end())
    return;
  // Order among subscribers does not matter: swap and pop, O(1).
  std::swap(*i, subscribers.back());
  subscribers.pop_back();
  spdlog::debug("lobby {}: subscriber gone ({} live)", value.id,
                subscribers.size());
}

void lobby_state::add_bot(const join_key& key,
                          std::shared_ptr<const lobby_image::member> m) {
  auto known = providers.find(m->value.provider_id);
  auto& by = known != providers.end() && known->second.via != transport::caf
               ? quiet_bots
               : bots_by_provider;
  by[m->value.provider_id][m->value.session_id] = m;
  bots.emplace(key, std::move(m));
}

void lobby_state::drop_bot(const session& s, bool forget) {
  // Only its own entry: in cluster mode a new member of the same name can
  // be here before the watch removes the one it replaced.
  if (auto i = bots.find(join_key{s.bot_name, s.nick});
      i != bots.end() && i->second->value.session_id == s.session_id)
    bots.erase(i);
  for (auto* by : {&bots_by_provider, &quiet_bots})
    if (auto i = by->find(s.provider_id); i != by->end()) {
      i->second.erase(s.session_id);
      if (i->second.empty())
        by->erase(i);
    }
  if (forget)
    forget_unused_provider(s.provider_id);
}

void lobby_state::forget_unused_provider(const std::string& provider_id) {
  if (bots_by_provider.count(provider_id) == 0
      && quiet_bots.count(provider_id) == 0
      && awaiting.count(provider_id) == 0)
    providers.erase(provider_id);
}

void lobby_state::learned(const provider& p) {
  providers[p.provider_id] = p;
  if (p.via == transport::caf)
    return;
  // Its bots hear no events: out of the fan-out, for good.
  if (auto i = bots_by_provider.find(p.provider_id);
      i != bots_by_provider.end()) {
    auto& q = quiet_bots[p.provider_id];
    for (auto& kv : i->second)
      q.insert(kv);
    bots_by_provider.erase(i);
  }
}

void lobby_state::emit(const char* type, const session& member,
                       std::string text) {
  lobby_event ev{type, value.id, member, std::move(text), unix_now()};
  for (auto& sub : subscribers)
    self->send(sub, atom::event_v, ev);
  // Only the bots of CAF providers (or of providers not known yet) hear
  // events: HTTP providers' bots are kept apart, so a lobby full of them
  // costs nothing per event.
  for (auto& [provider_id, members] : bots_by_provider) {
    for (auto& [session_id, m] : members)
      // A bot never hears about itself: not its own join, nor its own lines.
      if (session_id != member.session_id)
        tell_bot(m->value, ev);
  }
}

void lobby_state::tell_bot(const session& bot, const lobby_event& ev) {
  if (auto i = providers.find(bot.provider_id); i != providers.end()) {
    self->send(peers.dispatcher, atom::event_v, i->second, bot.run_id, ev);
    return;
  }
  // A bot loaded from disk: its provider's record is asked for once, and
  // the events wait for it in order.
  auto& queue = awaiting[bot.provider_id];
  queue.emplace_back(bot.run_id, ev);
  if (queue.size() > 1)
    return;
  auto provider_id = bot.provider_id;
  self->request(peers.registry, peers.timeout, atom::get_v, provider_id)
    .then(
      [this, provider_id](provider& p) {
        learned(p);
        auto& rec = providers[provider_id];
        auto queued = std::move(awaiting[provider_id]);
        awaiting.erase(provider_id);
        if (rec.via == transport::caf)
          for (auto& [run_id, ev] : queued)
            self->send(peers.dispatcher, atom::event_v, rec, run_id, ev);
      },
      [this, provider_id](caf::error& err) {
        auto n = awaiting[provider_id].size();
        awaiting.erase(provider_id);
        spdlog::warn("lobby {}: {} events for bots of provider {} dropped: {}",
                     value.id, n, provider_id, to_string(err));
      });
}

void lobby_state::say(const std::string& session_id, const std::string& text,
                      const std::string& provider_id, bool broadcast) {
  auto& ss = value.sessions;
  auto i = std::find_if(ss.begin(), ss.end(), [&](const auto& m) {
    return m->value.session_id == session_id;
  });
  if (i == ss.end()) {
    spdlog::debug("lobby {}: a line from non-member {} ignored", value.id,
                  session_id);
    return;
  }
  // Only the provider that runs a bot speaks for it.
  if (!(*i)->value.is_bot || (*i)->value.provider_id != provider_id) {
    spdlog::warn("lobby {}: a line for {} from provider {} ignored (not its "
                 "bot)",
                 value.id, (*i)->value.nick, provider_id);
    return;
  }
  if (text.empty() || !printable(text, true)
      || utf8_length(text) > max_chat_length) {
    spdlog::warn("lobby {}: an invalid line from {} ignored", value.id,
                 (*i)->value.nick);
    return;
  }
  auto member = (*i)->value;
  emit("chat", member, text);
  // Cluster mode: the other instances' subscribers and bots hear it too.
  if (broadcast && peers.broadcast)
    caf::anon_send(peers.broadcast, atom::say_v, value.id, session_id, text,
                   provider_id);
}

void lobby_state::chat(const std::string& nick, const std::string& text,
                       bool broadcast) {
  // Checked by the front end already; the lobby does not trust it blindly.
  if (nick.empty() || !printable(nick) || utf8_length(nick) > max_name_length
      || text.empty() || !printable(text, true)
      || utf8_length(text) > max_chat_length)
    return;
  session speaker;
  speaker.nick = nick;
  emit("chat", speaker, text);
  if (broadcast && peers.broadcast)
    caf::anon_send(peers.broadcast, atom::chat_v, value.id, nick, text);
}

std::shared_ptr<const lobby_image::member>
lobby_state::find_member(const std::string& session_id) const {
  for (auto& m : value.sessions)
    if (m->value.session_id == session_id)
      return m;
  return nullptr;
}

std::optional<session> lobby_state::remove_member(const std::string& session_id) {
  auto& ss = value.sessions;
  auto i = std::find_if(ss.begin(), ss.end(), [&](const auto& m) {
    return m->value.session_id == session_id;
  });
  if (i == ss.end())
    return std::nullopt;
  auto s = (*i)->value;
  ss.erase(i);
  if (s.is_bot)
    drop_bot(s);
  spdlog::info("left: '{}' from lobby {} (session {})", s.nick, value.id,
               s.session_id);
  emit("member_left", s);
  notify(member_change{value.id, nullptr, s.session_id});
  return s;
}

lobby_actor::behavior_type
lobby_fn(lobby_actor::stateful_pointer<lobby_state> self,
         lobby_directory_actor directory, lobby_peers peers,
         lobby_image value) {
  auto& st = self->state;
  st.self = self;
  st.directory = std::move(directory);
  st.peers = std::move(peers);
  st.value = std::move(value);
  for (auto& m : st.value.sessions)
    if (m->value.is_bot)
      st.add_bot(lobby_state::join_key{m->value.bot_name, m->value.nick}, m);
  self->set_down_handler(
    [=](caf::down_msg& dm) { self->state.unsubscribe(dm.source); });
  // Shutting down (the directory exits, and its lobbies with it): joins in
  // flight are answered now, not when their client gives up.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& st = self->state;
    std::vector<lobby_state::join_key> keys;
    for (auto& kv : st.pending)
      keys.push_back(kv.first);
    for (auto& k : keys)
      st.finish(k, make_error(ec::unavailable, "the server is shutting down"),
                {});
    self->quit(msg.reason);
  });
  return {
      [=](atom::get) { return to_lobby(self->state.value); },
      [=](atom::join, const bot_join& j) -> caf::result<session> {
        auto rp = self->make_response_promise<session>();
        self->state.join(j, rp);
        return rp;
      },
      [=](atom::add, const std::string& nick) -> caf::result<session> {
        if (self->state.full())
          return make_error(ec::full, "Lobby is full");
        return self->state.add_person(nick);
      },
      [=](atom::reconcile, const std::string& provider_id,
          const std::vector<std::string>& runs,
          double since) -> std::vector<std::string> {
        auto& st = self->state;
        std::set<std::string> has(runs.begin(), runs.end());
        std::vector<std::string> kept;
        std::vector<std::shared_ptr<const lobby_image::member>> gone;
        for (auto& m : st.value.sessions) {
          auto& s = m->value;
          if (!s.is_bot || s.provider_id != provider_id)
            continue;
          if (has.count(s.run_id) != 0 || std::max(s.joined_at, s.moved_at) >= since)
            kept.push_back(s.run_id);
          else
            gone.push_back(m);
        }
        // The members whose runs it lacks go elsewhere (SPEC §7).
        provider old;
        old.provider_id = provider_id;
        for (auto& m : gone)
          st.move(m, old, move_reason::reconciled);
        return kept;
      },
      [=](atom::redispatch, const std::vector<std::string>& ids,
          const provider& old, move_reason why) {
        auto& st = self->state;
        for (auto& id : ids) {
          auto m = st.find_member(id);
          if (!m || !m->value.is_bot)
            continue;
          // Only members still with that provider (an orphan has none to
          // leave).
          if (why != move_reason::orphan
              && m->value.provider_id != old.provider_id)
            continue;
          st.move(m, old, why);
        }
      },
      [=](atom::orphans, const std::vector<std::string>& bots) {
        auto& st = self->state;
        std::set<std::string> wanted(bots.begin(), bots.end());
        std::vector<std::shared_ptr<const lobby_image::member>> found;
        for (auto& m : st.value.sessions)
          if (m->value.is_bot && m->value.orphaned
              && wanted.count(m->value.bot_name) != 0)
            found.push_back(m);
        for (auto& m : found) {
          provider old;
          old.provider_id = m->value.provider_id;
          st.move(m, old, move_reason::orphan);
        }
      },
      [=](atom::remove, const std::string& session_id) -> caf::result<bool> {
        auto& st = self->state;
        auto m = st.find_member(session_id);
        if (!m)
          return session_not_found(st.peers.stats);
        if (!m->value.is_bot) {
          st.remove_member(session_id);
          return true;
        }
        auto rp = self->make_response_promise<bool>();
        auto change = leave_change(st.value.id, session_id);
        if (st.peers.claims)
          change.claims.push_back(store_claim{st.value.id, m->value.bot_name,
                                              m->value.nick, session_id,
                                              nullptr});
        st.write({std::move(change)},
                 [self, rp, m](const caf::error& err) mutable {
                   if (err) {
                     rp.deliver(err);
                     return;
                   }
                   auto& st = self->state;
                   st.remove_member(m->value.session_id);
                   rp.deliver(true);
                   // Tell the provider to stop the run; the member is gone
                   // either way.
                   st.stop_run(m->value);
                 });
        return rp;
      },
      [=](atom::subscribe, lobby_subscriber_actor sub) {
        self->state.subscribe(std::move(sub));
      },
      [=](atom::say, const std::string& session_id, const std::string& text,
          const std::string& provider_id) {
        self->state.say(session_id, text, provider_id, true);
      },
      [=](atom::chat, const std::string& nick, const std::string& text) {
        self->state.chat(nick, text, true);
      },
      [=](atom::say, const std::string& session_id, const std::string& text,
          const std::string& provider_id, atom::remote) {
        self->state.say(session_id, text, provider_id, false);
      },
      [=](atom::chat, const std::string& nick, const std::string& text,
          atom::remote) {
        self->state.chat(nick, text, false);
      },
      [=](atom::remote, const remote_batch& batch) {
        self->state.apply_remote(batch);
      },
  };
}

// -- directory ----------------------------------------------------------------

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

lobby_directory_actor::behavior_type lobby_directory(
    lobby_directory_actor::stateful_pointer<lobby_directory_state> self,
    std::vector<lobby_image> initial, lobby_peers peers,
    std::shared_ptr<server_stats> stats) {
  auto& st = self->state;
  st.self = self;
  st.peers = std::move(peers);
  st.stats = std::move(stats);
  for (auto& l : initial)
    if (st.find(l.id) == nullptr && st.by_name.count(l.name) == 0)
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
      [=](atom::get, const std::string& id) -> caf::result<lobby> {
        auto e = self->state.find(id);
        if (e == nullptr)
          return make_error(ec::not_found, "Lobby not found");
        return self->delegate(e->actor, atom::get_v);
      },
      [=](atom::join, const std::string& id,
          const bot_join& j) -> caf::result<session> {
        auto e = self->state.find(id);
        if (e == nullptr)
          return make_error(ec::not_found, "Lobby not found");
        return self->delegate(e->actor, atom::join_v, j);
      },
      [=](atom::add, const std::string& id,
          const std::string& nick) -> caf::result<session> {
        auto e = self->state.find(id);
        if (e == nullptr)
          return make_error(ec::not_found, "Lobby not found");
        return self->delegate(e->actor, atom::add_v, nick);
      },
      [=](atom::remove, const std::string& id,
          const std::string& session_id) -> caf::result<bool> {
        auto e = self->state.find(id);
        if (e == nullptr)
          return make_error(ec::not_found, "Lobby not found");
        return self->delegate(e->actor, atom::remove_v, session_id);
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
  };
}

} // namespace vb
