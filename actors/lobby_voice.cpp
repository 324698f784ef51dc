// A lobby's voice peers (SPEC §9): who a socket speaks for (hello), the
// announcements to the other peers, the table of sockets that lets a signal
// go from one socket to another without the lobby, and the idle timeout of
// people without a socket. The sockets' side is http/lobby_socket.cpp.
#include <algorithm>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/lobby_shared.hpp"
#include "actors/stats.hpp"
#include "model/json.hpp"
#include "model/secret.hpp"

namespace vb {

namespace {

std::string peer_left_message(const std::string& session_id) {
  return nlohmann::json{{"type", "peer_left"}, {"session_id", session_id}}
    .dump();
}

std::string peer_joined_message(const voice_peer& p) {
  return nlohmann::json{{"type", "peer_joined"}, {"peer", p}}.dump();
}

/// To a socket another one took over from: it speaks for no one now.
const std::string replaced_message = R"({"type":"replaced"})";

voice_peer peer_of(const session& s) {
  return voice_peer{s.session_id, s.nick, s.is_bot, s.bot_name};
}

} // namespace

size_t lobby_state::voice_peers() const {
  return static_cast<size_t>(
    std::count_if(value.sessions.begin(), value.sessions.end(),
                  [](const auto& m) { return m->value.voice; }));
}

caf::result<voice_welcome>
lobby_state::hello(const voice_hello& h, lobby_subscriber_actor socket) {
  auto m = find_member(h.session_id);
  // Unknown and wrong look the same to the caller, and take the same time.
  if (!m || !token_matches(h.token, m->value.token_hash))
    return make_error(ec::bad_token, "bad or stale session token");
  if (!m->value.is_bot && !h.person_allowed)
    return make_error(ec::access_required,
                      "a person's hello needs a frontend access token");
  if (!m->value.voice && voice_peers() >= peers.max_voice_peers)
    return make_error(ec::voice_full, "the lobby has its most voice peers");
  auto sid = h.session_id;
  // A second socket takes over: the first speaks for no one now.
  if (auto i = seats.find(sid); i != seats.end() && i->second != socket)
    self->send(i->second, atom::voice_v,
               replaced_message, true);
  // A socket on another instance is told by its own lobby when this seat
  // reaches it.
  remote_seats.erase(sid);
  seats[sid] = socket;
  idle.erase(sid);
  tell_seat(sid, socket, true, m->value.voice && !h.resume);
  spdlog::info("lobby {}: '{}' (session {}) speaks on a socket{}", value.id,
               m->value.nick, sid, h.resume ? " again" : "");
  if (m->value.voice) {
    // A page reloaded (or a run started anew) holds no connection: its
    // peers drop theirs and wait for its offers.
    if (!h.resume) {
      announce(peer_left_message(sid), sid);
      announce(peer_joined_message(peer_of(m->value)), sid);
    }
    publish_voice();
    return welcome_for(sid);
  }
  // The first hello: a voice peer from now on, durably (a restart keeps
  // who the peers are, so a resumed page keeps its connections).
  auto rp = self->make_response_promise<voice_welcome>();
  become_peer(sid, rp);
  return rp;
}

void lobby_state::become_peer(const std::string& sid,
                              caf::typed_response_promise<voice_welcome> rp) {
  auto m = find_member(sid);
  if (!m) {
    rp.deliver(make_error(ec::bad_token, "the session ended"));
    return;
  }
  if (m->value.voice) { // made one by an earlier hello meanwhile
    publish_voice();
    rp.deliver(welcome_for(sid));
    return;
  }
  if (wait_for_write(sid, [this, sid, rp]() mutable { become_peer(sid, rp); }))
    return;
  auto s = m->value;
  s.voice = true;
  auto now = make_member(std::move(s));
  write_member(sid, update_change(value.id, now),
               [this, m, now, sid, rp](const caf::error& err) mutable {
                 if (err || !is_current(m)) {
                   rp.deliver(err ? err
                                  : make_error(ec::bad_token,
                                               "the session ended"));
                   return;
                 }
                 replace_member(now, std::nullopt);
                 rp.deliver(welcome_for(sid));
               });
}

voice_welcome lobby_state::welcome_for(const std::string& session_id) const {
  voice_welcome w;
  w.session_id = session_id;
  for (auto& m : value.sessions)
    if (m->value.voice && m->value.session_id != session_id)
      w.peers.push_back(peer_of(m->value));
  return w;
}

void lobby_state::voice_changed(const std::optional<session>& was,
                                const session& now) {
  bool before = was && was->voice;
  if (before && !now.voice)
    return voice_gone(*was, true);
  if (before || !now.voice)
    return;
  // A voice peer now: its first hello, here or on another instance.
  if (peers.stats)
    ++peers.stats->voice_peers;
  announce(peer_joined_message(peer_of(now)), now.session_id);
  publish_voice();
}

void lobby_state::announce(const std::string& text,
                           const std::string& except) {
  for (auto& [sid, socket] : seats)
    if (sid != except)
      self->send(socket, atom::voice_v, text, false);
}

void lobby_state::publish_voice() {
  auto table = std::make_shared<voice_table>();
  for (auto& m : value.sessions)
    if (m->value.voice) {
      auto& sid = m->value.session_id;
      caf::strong_actor_ptr socket;
      if (auto i = seats.find(sid); i != seats.end())
        socket = caf::actor_cast<caf::strong_actor_ptr>(i->second);
      else if (auto r = remote_seats.find(sid); r != remote_seats.end())
        socket = r->second;
      table->sockets.emplace(sid, std::move(socket));
    }
  voice_table_ptr shared = std::move(table);
  for (auto& [sid, socket] : seats)
    self->send(socket, atom::peers_v, shared);
}

void lobby_state::unseat(const caf::actor_addr& socket) {
  bool changed = false;
  for (auto i = seats.begin(); i != seats.end();) {
    if (i->second.address() != socket) {
      ++i;
      continue;
    }
    auto sid = i->first;
    tell_seat(sid, i->second, false, false);
    i = seats.erase(i);
    changed = true;
    // A dropped socket is not a peer_left (SPEC §9): the media goes on.
    if (auto m = find_member(sid); m && !m->value.is_bot)
      arm_idle(sid);
  }
  if (changed)
    publish_voice();
}

void lobby_state::seated_elsewhere(const voice_seat& seat) {
  auto& sid = seat.session_id;
  if (seat.online) {
    if (!seat.socket)
      return;
    // The latest hello took over: a socket here speaks for no one now.
    if (auto i = seats.find(sid); i != seats.end()) {
      self->send(i->second, atom::voice_v,
                 replaced_message, true);
      seats.erase(i);
    }
    remote_seats[sid] = seat.socket;
    self->monitor(seat.socket);
    idle.erase(sid);
    auto m = find_member(sid);
    if (seat.renewed && m && m->value.voice) {
      announce(peer_left_message(sid), sid);
      announce(peer_joined_message(peer_of(m->value)), sid);
    }
  } else {
    auto r = remote_seats.find(sid);
    if (r == remote_seats.end() || r->second != seat.socket)
      return; // a later socket speaks for it
    remote_seats.erase(r);
    if (auto m = find_member(sid); m && !m->value.is_bot && !has_socket(sid))
      arm_idle(sid);
  }
  publish_voice();
}

void lobby_state::tell_seat(const std::string& session_id,
                            const lobby_subscriber_actor& socket, bool online,
                            bool renewed) {
  peers.lines->seated(voice_seat{value.id, session_id,
                                 caf::actor_cast<caf::strong_actor_ptr>(socket),
                                 online, renewed});
}

void lobby_state::tell_seats() {
  for (auto& [sid, socket] : seats)
    tell_seat(sid, socket, true, false);
}

void lobby_state::remote_gone(const caf::actor_addr& socket) {
  bool changed = false;
  for (auto i = remote_seats.begin(); i != remote_seats.end();) {
    if (!i->second || i->second->address() != socket) {
      ++i;
      continue;
    }
    auto sid = i->first;
    i = remote_seats.erase(i);
    changed = true;
    if (auto m = find_member(sid); m && !m->value.is_bot && !has_socket(sid))
      arm_idle(sid);
  }
  if (changed)
    publish_voice();
}

bool lobby_state::has_socket(const std::string& session_id) const {
  return seats.count(session_id) != 0 || remote_seats.count(session_id) != 0;
}

void lobby_state::voice_gone(const session& s, bool fenced) {
  auto sid = s.session_id;
  idle.erase(sid);
  remote_seats.erase(sid);
  auto i = seats.find(sid);
  if (i != seats.end()) {
    // Its socket speaks for no one now: the session ended, or (a moved
    // bot) the old run's token is no longer the member's.
    self->send(i->second, atom::voice_v,
               std::string{fenced ? R"({"type":"error","code":"bad_token",)"
                                    R"("detail":"this run's token is no longer good"})"
                                  : R"({"type":"error","code":"bad_token",)"
                                    R"("detail":"the session ended"})"},
               true);
    seats.erase(i);
  }
  if (!s.voice)
    return;
  if (peers.stats)
    --peers.stats->voice_peers;
  spdlog::info("lobby {}: voice peer '{}' (session {}) left", value.id, s.nick,
               sid);
  announce(peer_left_message(sid), sid);
  publish_voice();
}

void lobby_state::arm_idle(const std::string& session_id) {
  auto gen = ++idle_generation;
  idle[session_id] = gen;
  self->delayed_send(self, peers.session_idle_timeout, atom::idle_v,
                     session_id, gen);
}

void lobby_state::idle_expired(const std::string& session_id, uint64_t gen) {
  auto i = idle.find(session_id);
  if (i == idle.end() || i->second != gen || has_socket(session_id))
    return;
  idle.erase(i);
  spdlog::info("lobby {}: session {} had no socket for {:.0f} s: it ends",
               value.id, session_id,
               std::chrono::duration<double>(peers.session_idle_timeout)
                 .count());
  leave(session_id, [this, session_id](const caf::error& err) {
    if (err)
      spdlog::warn("lobby {}: idle session {} not ended: {}", value.id,
                   session_id, to_string(err));
  });
}

} // namespace vb
