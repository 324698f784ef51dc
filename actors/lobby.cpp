// A lobby: its members, subscribers and events (actors/lobby.hpp); its
// join flow is join_flow.cpp.
#include <algorithm>
#include <chrono>
#include <optional>
#include <set>
#include <unordered_set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/directory.hpp"
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

void lobby_state::insert_bot(std::shared_ptr<const lobby_image::member> m) {
  auto& s = m->value;
  add_bot(join_key{s.bot_name, s.nick}, m);
  value.sessions.push_back(m);
  spdlog::info("bot joined: {} as '{}' in lobby {} (provider {}, run {})",
               s.bot_name, s.nick, value.id, s.provider_id, s.run_id);
  emit(lobby_event_type::member_joined, s);
  notify(member_change{value.id, std::move(m), {}});
  // A bot joining an empty lobby does not keep it: the grace runs for it.
  check_grace();
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
      // A person who joined on another instance (or, on a resync, again),
      // or became a voice peer there.
      auto old = find_member(c.key);
      if (!old)
        insert_person(make_member(std::move(s)));
      else if (session_json(old->value) != session_json(s))
        replace_member(make_member(std::move(s)), std::nullopt);
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
    auto event = s.orphaned && !old->value.orphaned
                   ? lobby_event_type::member_orphaned
                   : lobby_event_type::member_moved;
    replace_member(make_member(std::move(s)), event);
  }
  if (!batch.resync)
    return;
  std::vector<std::string> gone;
  for (auto& m : value.sessions)
    if (named.count(m->value.session_id) == 0)
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

void lobby_state::add_person(const std::string& nick,
                             caf::typed_response_promise<person_session> rp) {
  person_session answer;
  answer.token = new_token();
  auto& s = answer.value;
  s.session_id = new_uuid(rng);
  s.nick = nick;
  s.joined_at = unix_now();
  s.token_hash = token_hash(answer.token);
  auto m = make_member(s);
  s.token_hash.clear(); // the answer carries the token itself, once
  store_batch batch{join_change(value.id, m)};
  // The first person: the header says so from now on, in the same write.
  if (!value.had_people)
    batch.push_back(had_people_change());
  write(std::move(batch),
        [this, m, rp, answer](const caf::error& err) mutable {
          if (err) {
            spdlog::warn("'{}' not added to lobby {}: {}", m->value.nick,
                         value.id, to_string(err));
            rp.deliver(err);
            return;
          }
          insert_person(m);
          rp.deliver(std::move(answer));
        });
}

void lobby_state::insert_person(std::shared_ptr<const lobby_image::member> m) {
  auto& s = m->value;
  value.sessions.push_back(m);
  ++people;
  // Durable already: written with the person here, or by the instance that
  // added it.
  value.had_people = true;
  spdlog::info("joined: '{}' in lobby {} (session {})", s.nick, value.id,
               s.session_id);
  emit(lobby_event_type::member_joined, s);
  // Until a socket speaks for it (one on another instance may already).
  if (!has_socket(s.session_id))
    arm_idle(s.session_id);
  // Seen first as a voice peer (it said hello on another instance).
  voice_changed(std::nullopt, s);
  notify(member_change{value.id, std::move(m), {}});
  check_grace(); // a person within the grace keeps the bots
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
  unseat(who);
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
  auto known = transports.find(m->value.provider_id);
  auto& by = known != transports.end() && known->second != transport::caf
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
    transports.erase(provider_id);
}

void lobby_state::learned(const provider& p) {
  transports[p.provider_id] = p.via;
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

void lobby_state::emit(lobby_event_type type, const session& member,
                       std::string text, leave_reason why) {
  lobby_event ev{type, value.id, member, std::move(text), unix_now()};
  for (auto& sub : subscribers)
    if (why == leave_reason::asked)
      self->send(sub, atom::event_v, ev);
    else
      self->send(sub, atom::event_v, ev, why);
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
  if (auto i = transports.find(bot.provider_id); i != transports.end()) {
    self->send(peers.dispatcher, atom::event_v, bot.provider_id, bot.run_id,
               ev);
    return;
  }
  // A bot loaded from disk: how its provider is reached is asked for once,
  // and the events wait for it in order.
  auto& queue = awaiting[bot.provider_id];
  queue.emplace_back(bot.run_id, ev);
  if (queue.size() > 1)
    return;
  auto provider_id = bot.provider_id;
  self->request(peers.registry, peers.timeout, atom::get_v, provider_id)
    .then(
      [this, provider_id](provider& p) {
        learned(p);
        auto queued = std::move(awaiting[provider_id]);
        awaiting.erase(provider_id);
        if (p.via == transport::caf)
          for (auto& [run_id, ev] : queued)
            self->send(peers.dispatcher, atom::event_v, provider_id, run_id,
                       ev);
      },
      [this, provider_id](caf::error& err) {
        auto n = awaiting[provider_id].size();
        awaiting.erase(provider_id);
        spdlog::warn("lobby {}: {} events for bots of provider {} dropped: {}",
                     value.id, n, provider_id, to_string(err));
      });
}

void lobby_state::say(const std::string& session_id, const std::string& text,
                      const std::string& provider_id, bool here) {
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
  emit(lobby_event_type::chat, member, text);
  // Said here: the other instances' subscribers and bots hear it too.
  if (here)
    peers.lines->said(value.id, session_id, text, provider_id);
}

void lobby_state::chat(const std::string& nick, const std::string& text,
                       bool here) {
  // Checked by the front end already; the lobby does not trust it blindly.
  if (nick.empty() || !printable(nick) || utf8_length(nick) > max_name_length
      || text.empty() || !printable(text, true)
      || utf8_length(text) > max_chat_length)
    return;
  session speaker;
  speaker.nick = nick;
  emit(lobby_event_type::chat, speaker, text);
  if (here)
    peers.lines->chatted(value.id, nick, text);
}

std::shared_ptr<const lobby_image::member>
lobby_state::find_member(const std::string& session_id) const {
  for (auto& m : value.sessions)
    if (m->value.session_id == session_id)
      return m;
  return nullptr;
}

std::optional<session>
lobby_state::remove_member(const std::string& session_id, leave_reason why) {
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
  else
    --people;
  spdlog::info("left: '{}' from lobby {} (session {}){}{}", s.nick, value.id,
               s.session_id, why == leave_reason::asked ? "" : ", ",
               why == leave_reason::asked ? "" : to_string(why));
  emit(lobby_event_type::member_left, s, {}, why);
  notify(member_change{value.id, nullptr, s.session_id});
  voice_gone(s, false);
  check_grace(); // the last person gone: the grace starts
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
  for (auto& m : st.value.sessions) {
    if (m->value.is_bot) {
      st.add_bot(lobby_state::join_key{m->value.bot_name, m->value.nick}, m);
    } else { // the time the server was down does not count (SPEC §9)
      ++st.people;
      st.arm_idle(m->value.session_id);
    }
    if (m->value.voice && st.peers.stats)
      ++st.peers.stats->voice_peers;
  }
  st.remember_people();
  // The full grace from this start: downtime does not count.
  st.check_grace();
  self->set_down_handler([=](caf::down_msg& dm) {
    self->state.unsubscribe(dm.source);
    self->state.remote_gone(dm.source);
  });
  // Shutting down (the directory exits, and its lobbies with it): joins in
  // flight are answered now, not when their client gives up.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& st = self->state;
    auto down = make_error(ec::unavailable, "the server is shutting down");
    for (auto& kv : st.after_commit)
      for (auto& waiting : kv.second)
        waiting.second.deliver(down);
    st.after_commit.clear();
    std::vector<lobby_state::join_key> keys;
    for (auto& kv : st.pending)
      keys.push_back(kv.first);
    for (auto& k : keys)
      st.finish(k, down, {});
    self->quit(msg.reason);
  });
  return {
      [=](atom::get) { return to_lobby(self->state.value); },
      [=](atom::join, const bot_join& j) -> caf::result<session> {
        auto rp = self->make_response_promise<session>();
        self->state.join(j, rp);
        return rp;
      },
      [=](atom::add, const std::string& nick) -> caf::result<person_session> {
        if (self->state.full())
          return make_error(ec::full, "Lobby is full");
        auto rp = self->make_response_promise<person_session>();
        self->state.add_person(nick, rp);
        return rp;
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
        auto rp = self->make_response_promise<bool>();
        self->state.leave(session_id, [rp](const caf::error& err) mutable {
          if (err)
            rp.deliver(err);
          else
            rp.deliver(true);
        });
        return rp;
      },
      [=](atom::hello, const voice_hello& h,
          lobby_subscriber_actor socket) -> caf::result<voice_welcome> {
        return self->state.hello(h, std::move(socket));
      },
      [=](atom::idle, const std::string& session_id, uint64_t generation) {
        self->state.idle_expired(session_id, generation);
      },
      [=](atom::grace, uint64_t generation) {
        self->state.grace_expired(generation);
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
      [=](atom::seats, const voice_seat& seat, atom::remote) {
        self->state.seated_elsewhere(seat);
      },
      [=](atom::seats) { self->state.tell_seats(); },
  };
}

} // namespace vb
