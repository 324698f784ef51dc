// The join flow of a lobby (SPEC §3, §7): claim the name, place and
// dispatch it (the registry's candidates, the dispatcher's failover, in one
// request), commit the member durably; and the same for a member moved to a
// new run.
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
#include "model/secret.hpp"
#include "model/journal_codec.hpp"
#include "model/snapshot_codec.hpp"
#include "model/validate.hpp"
#include "actors/lobby_shared.hpp"

namespace vb {

namespace {

/// A join that timed out on its way through the registry and the
/// dispatcher is a provider that cannot be reached now.
caf::error as_join_error(const caf::error& err) {
  if (err == caf::sec::request_timeout)
    return make_error(ec::unavailable, "Bot provider did not answer in time");
  return err;
}

} // namespace

void lobby_state::join(const bot_join& j, session_promise rp) {
  join_key key{j.bot_name, j.nick};
  if (auto i = pending.find(key); i != pending.end()) {
    // The same join is in flight: share its answer, unless its member is
    // being written. That write may have applied before this join came,
    // and another instance may have ended the member since (cluster
    // mode): this join asks anew once the write is answered.
    if (committing.count(key) != 0)
      after_commit[key].emplace_back(j, std::move(rp));
    else
      i->second.push_back(std::move(rp));
    return;
  }
  if (bots.count(key) == 0 && full()) {
    rp.deliver(make_error(ec::full, "Lobby is full"));
    return;
  }
  pending[key].push_back(std::move(rp));
  peers.claims->reserve(*this, key, j, new_uuid(rng));
}

void lobby_state::claimed(const join_key& key, const bot_join& j,
                          const std::string& session_id,
                          const std::optional<session>& holder) {
  if (!holder)
    return place(key, j, session_id);
  // Asked for again while orphaned: worth another try at once.
  if (auto i = bots.find(key);
      i != bots.end() && i->second->value.session_id == holder->session_id
      && i->second->value.orphaned) {
    provider old;
    old.provider_id = i->second->value.provider_id;
    move(i->second, old, move_reason::orphan);
  }
  finish(key, {}, *holder);
}

void lobby_state::place(const join_key& key, const bot_join& j,
                        const std::string& session_id) {
  // The run's token goes to its provider; the member keeps its hash.
  auto token = new_token();
  self
    ->request(peers.registry, peers.dispatch_wait, atom::place_v,
              dispatch_request{j.bot_name, value.id, session_id, j.nick, token},
              j.provider_id, std::string{})
    .then(
      [this, key, j, session_id, token](placed& to) {
        learned(*to.provider);
        session s;
        s.session_id = session_id;
        s.nick = j.nick;
        s.is_bot = true;
        s.bot_name = j.bot_name;
        s.provider_id = to.provider->provider_id;
        s.run_id = std::move(to.run_id);
        s.joined_at = unix_now();
        s.token_hash = token_hash(token);
        accepted(key, std::move(s));
      },
      [this, key, j, session_id](caf::error& err) {
        release(j.bot_name, j.nick, session_id);
        finish(key, as_join_error(err), {});
      });
}

void lobby_state::release(const std::string& bot_name, const std::string& nick,
                          const std::string& session_id) {
  peers.claims->release(*this, bot_name, nick, session_id);
}

void lobby_state::move(std::shared_ptr<const lobby_image::member> m,
                       provider old, move_reason why) {
  auto sid = m->value.session_id;
  if (!moving.insert(sid).second)
    return;
  spdlog::info("lobby {}: bot {} as '{}' (session {}) is dispatched again: {}",
               value.id, m->value.bot_name, m->value.nick, sid, to_string(why));
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
  auto orphan = [this, sid, m, stop_old](const caf::error& err) {
    moving.erase(sid);
    if (!is_current(m))
      return;
    stop_old();
    if (m->value.orphaned)
      return; // still orphaned; tried again when a provider comes
    spdlog::warn("lobby {}: bot {} as '{}' is orphaned: {}", value.id,
                 m->value.bot_name, m->value.nick, to_string(err));
    auto s = m->value;
    s.orphaned = true;
    s.voice = false; // its run is gone
    mark_orphaned(m, make_member(std::move(s)));
  };
  auto& s = m->value;
  // A new run, a new token: the old run's stops working once the move is
  // written (SPEC §9).
  auto token = new_token();
  // Another provider first; the one it leaves only as the last.
  self
    ->request(peers.registry, peers.dispatch_wait, atom::place_v,
              dispatch_request{s.bot_name, value.id, s.session_id, s.nick,
                               token},
              std::string{}, old.provider_id)
    .then(
      [this, m, stop_old, token](placed& to) {
        learned(*to.provider);
        auto s = m->value;
        s.provider_id = to.provider->provider_id;
        s.run_id = std::move(to.run_id);
        s.orphaned = false;
        s.moved_at = unix_now();
        s.token_hash = token_hash(token);
        s.voice = false;
        commit_move(m, make_member(std::move(s)), stop_old);
      },
      [orphan](caf::error& err) { orphan(as_join_error(err)); });
}

void lobby_state::replace_member(
  const std::shared_ptr<const lobby_image::member>& now,
  std::optional<lobby_event_type> event) {
  auto& s = now->value;
  std::optional<session> was;
  for (auto& m : value.sessions)
    if (m->value.session_id == s.session_id) {
      was = m->value;
      // The new member's provider record (learned) stays for add_bot.
      if (was->is_bot)
        drop_bot(m->value, false);
      m = now;
      break;
    }
  if (s.is_bot)
    add_bot(join_key{s.bot_name, s.nick}, now);
  if (was && !was->provider_id.empty())
    forget_unused_provider(was->provider_id);
  if (event)
    emit(*event, s);
  notify(member_change{value.id, now, s.session_id});
  // A new run is a voice peer again once it says hello (SPEC §9).
  voice_changed(was, s);
}

void lobby_state::accepted(const join_key& key, session s) {
  auto m = make_member(std::move(s));
  committing.insert(key);
  write({peers.claims->join_change(value.id, m)},
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

void lobby_state::finish(const join_key& key, const caf::error& err,
                         const session& s) {
  committing.erase(key);
  std::vector<std::pair<bot_join, session_promise>> again;
  if (auto a = after_commit.find(key); a != after_commit.end()) {
    again = std::move(a->second);
    after_commit.erase(a);
  }
  if (auto i = pending.find(key); i != pending.end()) {
    auto waiting = std::move(i->second);
    pending.erase(i);
    // The answer goes to the frontend (and the idempotency keys): no hash.
    auto answer = s;
    answer.token_hash.clear();
    for (auto& rp : waiting)
      if (err)
        rp.deliver(err);
      else
        rp.deliver(answer);
  }
  for (auto& [j, rp] : again)
    join(j, std::move(rp));
}

bool lobby_state::is_current(
  const std::shared_ptr<const lobby_image::member>& m) const {
  auto now = find_member(m->value.session_id);
  return now && now.get() == m.get();
}

void lobby_state::commit_move(std::shared_ptr<const lobby_image::member> from,
                              std::shared_ptr<const lobby_image::member> now,
                              std::function<void()> stop_old) {
  auto sid = from->value.session_id;
  if (!is_current(from)) {
    // It left meanwhile: the new run has no member.
    moving.erase(sid);
    stop_run(now->value);
    forget_unused_provider(now->value.provider_id);
    return;
  }
  if (wait_for_write(sid, [this, from, now, stop_old] {
        commit_move(from, now, stop_old);
      }))
    return;
  write_member(
    sid, update_change(value.id, now),
    [this, from, now, sid, stop_old](const caf::error& err) {
      moving.erase(sid);
      if (err || !is_current(from)) {
        spdlog::warn("lobby {}: move of {} not applied: {}", value.id, sid,
                     err ? to_string(err) : "it left");
        stop_run(now->value);
        forget_unused_provider(now->value.provider_id);
        return;
      }
      replace_member(now, lobby_event_type::member_moved);
      if (peers.stats)
        ++peers.stats->redispatches;
      spdlog::info("lobby {}: bot {} as '{}' moved to provider {} (run {})",
                   value.id, now->value.bot_name, now->value.nick,
                   now->value.provider_id, now->value.run_id);
      stop_old();
    });
}

void lobby_state::mark_orphaned(std::shared_ptr<const lobby_image::member> from,
                                std::shared_ptr<const lobby_image::member> now) {
  auto sid = from->value.session_id;
  if (!is_current(from))
    return;
  if (wait_for_write(sid, [this, from, now] { mark_orphaned(from, now); }))
    return;
  write_member(sid, update_change(value.id, now),
               [this, from, now](const caf::error& err) {
                 if (err) {
                   spdlog::warn("lobby {}: orphaned mark of {} not written: {}",
                                value.id, now->value.session_id, to_string(err));
                   return;
                 }
                 if (is_current(from))
                   replace_member(now, lobby_event_type::member_orphaned);
               });
}

bool lobby_state::wait_for_write(const std::string& sid,
                                 std::function<void()> retry) {
  auto i = writing.find(sid);
  if (i == writing.end())
    return false;
  i->second.push_back(std::move(retry));
  return true;
}

void lobby_state::write_member(const std::string& sid, store_batch batch,
                               std::function<void(const caf::error&)> done) {
  writing.emplace(sid, std::vector<std::function<void()>>{});
  write(std::move(batch), [this, sid, done](const caf::error& err) {
    done(err);
    auto i = writing.find(sid);
    if (i == writing.end())
      return;
    auto waiting = std::move(i->second);
    writing.erase(i);
    // Each decides again on what is now: the first to write takes the
    // member, the others wait behind it.
    for (auto& retry : waiting)
      retry();
  });
}

void lobby_state::leave(const std::string& sid,
                        std::function<void(const caf::error&)> done,
                        leave_reason why) {
  auto m = find_member(sid);
  if (!m) {
    done(session_not_found(peers.stats));
    return;
  }
  if (wait_for_write(sid, [this, sid, done, why] { leave(sid, done, why); }))
    return;
  // A person's name is nobody's claim (claims are bots' names).
  auto change = m->value.is_bot ? peers.claims->leave_change(value.id, m->value)
                                : leave_change(value.id, sid);
  write_member(sid, {std::move(change)},
               [this, done, m, why](const caf::error& err) {
                 if (err) {
                   done(err);
                   return;
                 }
                 remove_member(m->value.session_id, why);
                 done({});
                 // Tell the provider to stop the run; the member is gone
                 // either way.
                 if (m->value.is_bot)
                   stop_run(m->value);
               });
}

} // namespace vb
