#include "actors/lobby.hpp"

#include <algorithm>
#include <chrono>
#include <set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/in_order.hpp"
#include "actors/snapshot_writer.hpp"
#include "actors/stats.hpp"
#include "model/clock.hpp"
#include "model/ids.hpp"
#include "model/snapshot_codec.hpp"
#include "model/validate.hpp"

namespace vb {

namespace {


/// How long a lobby waits for its directory to make a change durable.
constexpr auto persist_timeout =
    group_commit::write_timeout + std::chrono::seconds(5);

/// A request that timed out while calling a provider is a provider that
/// cannot be reached now.
caf::error as_join_error(const caf::error& err) {
  if (err == caf::sec::request_timeout)
    return make_error(ec::unavailable, "Bot provider did not answer in time");
  return err;
}

} // namespace

std::vector<lobby> load_lobbies(const std::string& dir) {
  std::vector<lobby> result;
  if (!load_snapshot(dir, lobbies_file_name,
                     [&](const std::string& text, std::string& why) {
                       result.clear();
                       return decode_lobbies(text, result, why);
                     }))
    result.clear();
  size_t bots = 0;
  for (auto& l : result)
    bots += l.sessions.size();
  spdlog::info("loaded {} lobbies with {} bot members from {}/{}",
               result.size(), bots, dir, lobbies_file_name);
  return result;
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
  auto json = s.is_bot ? session_json(s) : std::string{};
  return std::make_shared<const lobby_image::member>(
    lobby_image::member{std::move(s), std::move(json)});
}

const session* lobby_state::find_bot(const std::string& bot_name,
                                     const std::string& nick) const {
  auto i = bots.find(join_key{bot_name, nick});
  return i == bots.end() ? nullptr : &i->second->value;
}

void lobby_state::join(const bot_join& j, session_promise rp) {
  join_key key{j.bot_name, j.nick};
  if (auto i = pending.find(key); i != pending.end()) {
    // The same join is in flight: share its answer.
    i->second.push_back(std::move(rp));
    return;
  }
  if (auto s = find_bot(j.bot_name, j.nick)) {
    rp.deliver(*s);
    return;
  }
  pending[key].push_back(std::move(rp));
  self->request(peers.registry, peers.timeout, atom::resolve_v, j.bot_name)
      .then(
          [this, key, j](std::vector<provider>& found) {
            std::vector<provider> candidates;
            for (auto& p : found)
              if (j.provider_id.empty() || p.provider_id == j.provider_id)
                candidates.push_back(std::move(p));
            if (candidates.empty())
              return finish(key, make_error(ec::not_found, "Bot not found"),
                            {});
            dispatch(key, j, std::move(candidates), 0, new_uuid(rng));
          },
          [this, key](caf::error& err) { finish(key, err, {}); });
}

void lobby_state::dispatch(const join_key& key, const bot_join& j,
                           std::vector<provider> candidates, size_t attempt,
                           std::string session_id) {
  auto p = candidates[attempt];
  dispatch_request req{j.bot_name, value.id, session_id, j.nick};
  self->request(peers.dispatcher, peers.timeout, atom::join_v, p, req)
      .then(
          [this, key, j, p, session_id](std::string& run_id) {
            self->send(peers.registry, atom::seen_v, p.provider_id);
            // The record the bot's lobby events go out with.
            providers[p.provider_id] = p;
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
          [this, key, j, candidates, attempt, session_id](caf::error& raw) {
            auto err = as_join_error(raw);
            auto& p = candidates[attempt];
            spdlog::warn("join {} into lobby {} via provider {} failed: {}",
                         j.bot_name, value.id, p.name, to_string(err));
            if (code_of(err) == ec::unavailable)
              self->send(peers.registry, atom::status_v, p.provider_id,
                         provider_status::unreachable);
            // Failover: once, to another online provider of the bot.
            auto next = attempt + 1;
            if (attempt == 0 && next < candidates.size()
                && candidates[next].status == provider_status::online)
              return dispatch(key, j, candidates, next, session_id);
            finish(key, err, {});
          });
}

void lobby_state::accepted(const join_key& key, session s) {
  auto m = make_member(s);
  add_bot(key, m);
  value.sessions.push_back(m);
  spdlog::info("bot joined: {} as '{}' in lobby {} (provider {}, run {})",
               s.bot_name, s.nick, value.id, s.provider_id, s.run_id);
  emit("member_joined", s);
  publish(member_change{value.id, std::move(m), {}}, true,
          [this, key, s](const caf::error& err) { finish(key, err, s); });
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
  publish(member_change{value.id, std::move(m), {}}, false, nullptr);
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
  bots_by_provider[m->value.provider_id][m->value.session_id] = m;
  bots.emplace(key, std::move(m));
}

void lobby_state::drop_bot(const session& s) {
  bots.erase(join_key{s.bot_name, s.nick});
  if (auto i = bots_by_provider.find(s.provider_id);
      i != bots_by_provider.end()) {
    i->second.erase(s.session_id);
    if (i->second.empty())
      bots_by_provider.erase(i);
  }
}

void lobby_state::emit(const char* type, const session& member,
                       std::string text) {
  lobby_event ev{type, value.id, member, std::move(text), unix_now()};
  for (auto& sub : subscribers)
    self->send(sub, atom::event_v, ev);
  for (auto& [provider_id, members] : bots_by_provider) {
    // HTTP providers get no lobby events: their bots are skipped at once,
    // so a lobby full of them costs one lookup per event, not one per bot.
    if (auto i = providers.find(provider_id);
        i != providers.end() && i->second.via != transport::caf)
      continue;
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
        auto& rec = providers[provider_id] = std::move(p);
        auto queued = std::move(awaiting[provider_id]);
        awaiting.erase(provider_id);
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
                      const std::string& provider_id) {
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
}

void lobby_state::chat(const std::string& nick, const std::string& text) {
  // Checked by the front end already; the lobby does not trust it blindly.
  if (nick.empty() || !printable(nick) || utf8_length(nick) > max_name_length
      || text.empty() || !printable(text, true)
      || utf8_length(text) > max_chat_length)
    return;
  session speaker;
  speaker.nick = nick;
  emit("chat", speaker, text);
}

void lobby_state::publish(member_change change, bool durable,
                          std::function<void(const caf::error&)> done) {
  self->request(directory, persist_timeout, atom::persist_v,
                std::move(change), durable)
      .then(
          [done](bool) {
            if (done)
              done(caf::error{});
          },
          [done](caf::error& err) {
            if (done)
              done(err);
          });
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
  return {
      [=](atom::get) { return to_lobby(self->state.value); },
      [=](atom::join, const bot_join& j) -> caf::result<session> {
        auto rp = self->make_response_promise<session>();
        self->state.join(j, rp);
        return rp;
      },
      [=](atom::add, const std::string& nick) {
        return self->state.add_person(nick);
      },
      [=](atom::reconcile, const std::string& provider_id,
          const std::vector<std::string>& runs,
          double since) -> caf::result<std::vector<std::string>> {
        auto& st = self->state;
        std::set<std::string> has(runs.begin(), runs.end());
        std::vector<std::string> kept;
        std::vector<session> gone;
        auto& ss = st.value.sessions;
        for (auto i = ss.begin(); i != ss.end();) {
          auto& s = (*i)->value;
          if (!s.is_bot || s.provider_id != provider_id) {
            ++i;
          } else if (has.count(s.run_id) != 0 || s.joined_at >= since) {
            kept.push_back(s.run_id);
            ++i;
          } else {
            gone.push_back(s);
            st.drop_bot(s);
            i = ss.erase(i);
          }
        }
        if (gone.empty())
          return kept;
        for (auto& s : gone) {
          spdlog::info("left: '{}' from lobby {} (session {}): provider {} "
                       "no longer runs it",
                       s.nick, st.value.id, s.session_id, provider_id);
          st.emit("member_left", s);
        }
        // One durable write for all of them: the last change waits for it.
        for (size_t k = 0; k + 1 < gone.size(); ++k)
          st.publish(member_change{st.value.id, nullptr, gone[k].session_id},
                     false, nullptr);
        auto rp = self->make_response_promise<std::vector<std::string>>();
        st.publish(member_change{st.value.id, nullptr, gone.back().session_id},
                   true, [rp, kept](const caf::error& err) mutable {
                     if (err)
                       rp.deliver(err);
                     else
                       rp.deliver(kept);
                   });
        return rp;
      },
      [=](atom::remove, const std::string& session_id) -> caf::result<bool> {
        auto& st = self->state;
        auto& ss = st.value.sessions;
        auto i = std::find_if(ss.begin(), ss.end(), [&](const auto& s) {
          return s->value.session_id == session_id;
        });
        if (i == ss.end())
          return make_error(ec::not_found, "Session not found");
        auto s = (*i)->value;
        ss.erase(i);
        if (s.is_bot)
          st.drop_bot(s);
        spdlog::info("left: '{}' from lobby {} (session {})", s.nick,
                     st.value.id, s.session_id);
        st.emit("member_left", s);
        member_change change{st.value.id, nullptr, s.session_id};
        if (!s.is_bot) {
          st.publish(std::move(change), false, nullptr);
          return true;
        }
        auto rp = self->make_response_promise<bool>();
        st.publish(std::move(change), true,
                   [self, rp, s](const caf::error& err) mutable {
          if (err) {
            rp.deliver(err);
            return;
          }
          rp.deliver(true);
          // Tell the provider to stop the run; the member is gone either way.
          auto& peers = self->state.peers;
          self->request(peers.registry, peers.timeout, atom::get_v,
                        s.provider_id)
              .then(
                  [self, s](provider& p) {
                    auto& peers = self->state.peers;
                    self->request(peers.dispatcher, peers.timeout, atom::stop_v,
                                  p, s.run_id)
                        .then([](bool) {},
                              [s](caf::error& err) {
                                spdlog::warn("stop of run {} failed: {}",
                                             s.run_id, to_string(err));
                              });
                  },
                  [s](caf::error&) {
                    spdlog::warn("stop of run {}: provider {} is gone",
                                 s.run_id, s.provider_id);
                  });
        });
        return rp;
      },
      [=](atom::subscribe, lobby_subscriber_actor sub) {
        self->state.subscribe(std::move(sub));
      },
      [=](atom::say, const std::string& session_id, const std::string& text,
          const std::string& provider_id) {
        self->state.say(session_id, text, provider_id);
      },
      [=](atom::chat, const std::string& nick, const std::string& text) {
        self->state.chat(nick, text);
      },
  };
}

// -- directory ----------------------------------------------------------------

lobby_directory_state::entry& lobby_directory_state::add(lobby_image value,
                                                         bool durable) {
  auto id = value.id;
  members += value.sessions.size();
  by_name[value.name] = id;
  auto actor = self->spawn<caf::linked>(
      lobby_fn, caf::actor_cast<lobby_directory_actor>(self), peers, value);
  auto& e = lobbies[id];
  e = entry{std::move(actor), std::move(value), nullptr, durable,
            next_order++};
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
  if (change.added) {
    ss.push_back(change.added);
    ++members;
  }
  if (!change.removed.empty()) {
    auto i = std::find_if(ss.begin(), ss.end(), [&](const auto& m) {
      return m->value.session_id == change.removed;
    });
    if (i != ss.end()) {
      ss.erase(i);
      --members;
    }
  }
  e->frozen.reset();
  publish_counts();
}

std::vector<lobby> lobby_directory_state::listing() const {
  std::vector<lobby> result;
  for (auto e : in_order(lobbies))
    if (!e->value.is_private)
      result.push_back(to_lobby(e->value));
  return result;
}

const lobby_directory_state::entry*
lobby_directory_state::find_session(const std::string& session_id) const {
  for (auto& kvp : lobbies)
    for (auto& s : kvp.second.value.sessions)
      if (s->value.session_id == session_id)
        return &kvp.second;
  return nullptr;
}

snapshot_job lobby_directory_state::snapshot() const {
  std::vector<lobby_image_ptr> values;
  for (auto e : in_order(lobbies)) {
    // Lobbies unchanged since the last write share its capture.
    if (!e->frozen)
      e->frozen = std::make_shared<const lobby_image>(e->value);
    values.push_back(e->frozen);
  }
  return snapshot_job{[values = std::move(values)] {
    // People are not durable: only lobbies and their bot members are, each
    // rendered once when it joined.
    std::vector<lobby> headers;
    headers.reserve(values.size());
    std::vector<lobby_fragments> frags(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      headers.push_back(to_lobby(*values[i], members_view::none));
      for (auto& m : values[i]->sessions)
        if (m->value.is_bot)
          frags[i].sessions.push_back(&m->json);
    }
    for (size_t i = 0; i < values.size(); ++i)
      frags[i].header = &headers[i];
    return encode_lobby_fragments(frags);
  }};
}

void lobby_directory_state::publish_counts() {
  if (!stats)
    return;
  stats->lobbies = lobbies.size();
  stats->members = members;
}

lobby_directory_actor::behavior_type lobby_directory(
    lobby_directory_actor::stateful_pointer<lobby_directory_state> self,
    snapshot_writer_actor writer, std::vector<lobby> initial, lobby_peers peers,
    std::shared_ptr<server_stats> stats) {
  auto& st = self->state;
  st.self = self;
  st.peers = std::move(peers);
  st.stats = std::move(stats);
  st.snapshots.init(std::move(writer),
                    [self] { return self->state.snapshot(); });
  for (auto& l : initial)
    if (st.find(l.id) == nullptr && st.by_name.count(l.name) == 0)
      st.add(to_image(std::move(l)), true);
  return {
      [=](atom::create, const lobby_create& c) -> caf::result<lobby_created> {
        auto& st = self->state;
        if (auto i = st.by_name.find(c.name); i != st.by_name.end()) {
          auto& e = st.lobbies.at(i->second);
          lobby_created existing{to_lobby(e.value), false};
          if (e.durable)
            return existing;
          auto rp = self->make_response_promise<lobby_created>();
          // Created moments ago and not yet on disk: answer with the write.
          st.snapshots.commit(self, deliver_when_durable(rp, existing));
          return rp;
        }
        lobby l;
        l.id = new_uuid(st.rng);
        l.name = c.name;
        l.is_private = c.is_private;
        l.created_at = unix_now();
        st.add(to_image(l), false);
        auto rp = self->make_response_promise<lobby_created>();
        spdlog::info("lobby created: '{}' id={}{}", l.name, l.id,
                     l.is_private ? " (private)" : "");
        st.snapshots.commit(self, [self, rp, l](const caf::error& err) mutable {
          if (err) {
            rp.deliver(err);
            return;
          }
          if (auto e = self->state.find(l.id))
            e->durable = true;
          rp.deliver(lobby_created{l, true});
        });
        return rp;
      },
      [=](atom::list) { return self->state.listing(); },
      [=](atom::get, const std::string& id) -> caf::result<lobby> {
        auto e = self->state.find(id);
        if (e == nullptr)
          return make_error(ec::not_found, "Lobby not found");
        return to_lobby(e->value);
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
            return make_error(ec::not_found, "Session not found");
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
      [=](atom::persist, const member_change& change,
          bool durable) -> caf::result<bool> {
        auto& st = self->state;
        st.update(change);
        if (!durable)
          return true;
        auto rp = self->make_response_promise<bool>();
        st.snapshots.commit(self, deliver_when_durable(rp, true));
        return rp;
      },
      [=](atom::reconcile, const std::string& provider_id,
          const std::vector<bot_run>& runs,
          double since) -> caf::result<std::vector<std::string>> {
        auto& st = self->state;
        // The lobbies concerned: those with a bot of this provider, and
        // those its runs name.
        std::set<std::string> ids;
        for (auto& [id, e] : st.lobbies)
          for (auto& m : e.value.sessions)
            if (m->value.is_bot && m->value.provider_id == provider_id) {
              ids.insert(id);
              break;
            }
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
      [=](atom::flush) -> caf::result<uint64_t> {
        auto rp = self->make_response_promise<uint64_t>();
        self->state.snapshots.barrier(self, rp);
        return rp;
      },
  };
}

} // namespace vb
