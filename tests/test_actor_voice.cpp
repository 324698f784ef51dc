// A lobby's voice peers (SPEC §9) on the deterministic scheduler: hello and
// its errors, announcements, takeover, the table of sockets, the idle
// timeout with driven time, the voice cap, a moved bot's token fenced, and
// what a restart keeps. Sockets are recording subscriber actors
// (lobby_fixture.hpp); the signal path itself is the socket's
// (tests/integration/test_voice.py).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "lobby_fixture.hpp"
#include "model/secret.hpp"
#include "model/snapshot_codec.hpp"

using namespace vb;
using namespace vb::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

/// The other instances as a lobby's line port reaches them (cluster mode):
/// the seats it told, and anything else it said (a test here says none).
struct told_seats {
  std::vector<voice_seat> seats;
  int other = 0;
};

line_relay_actor::behavior_type seat_recorder(line_relay_actor::pointer,
                                              std::shared_ptr<told_seats> t) {
  return {
    [t](atom::chat, const std::string&, const std::string&,
        const std::string&) { ++t->other; },
    [t](atom::say, const std::string&, const std::string&, const std::string&,
        const std::string&) { ++t->other; },
    [t](atom::seats, const voice_seat& s) { t->seats.push_back(s); },
  };
}

struct voice_fixture : events_fixture {
  std::string room;

  voice_fixture() {
    max_members = 20;
  }

  void open() {
    start();
    room = create("room").id;
  }

  person_session join_person(const std::string& nick) {
    return ask<person_session>(aut, atom::add_v, room, nick);
  }

  /// A socket of the lobby: a recording subscriber.
  struct socket {
    std::shared_ptr<feed> f;
    lobby_subscriber_actor actor;
  };

  socket connect() {
    auto f = std::make_shared<feed>();
    auto sub = sys.spawn(recorder, f);
    spawned.push_back(caf::actor_cast<caf::actor>(sub));
    self->send(lobby_of(room), atom::subscribe_v, sub);
    run();
    return {f, sub};
  }

  /// Cluster mode's line port, to a recorder of the seats told (call
  /// before open()).
  std::shared_ptr<told_seats> told = std::make_shared<told_seats>();
  void in_cluster() {
    auto r = sys.spawn(seat_recorder, told);
    spawned.push_back(caf::actor_cast<caf::actor>(r));
    lines = relayed_lines(r);
  }

  /// A socket on another instance: a recorder the lobby only reaches
  /// through the seats it is told of.
  socket far_socket() {
    auto f = std::make_shared<feed>();
    auto sub = sys.spawn(recorder, f);
    spawned.push_back(caf::actor_cast<caf::actor>(sub));
    return {f, sub};
  }

  static caf::strong_actor_ptr ptr(const socket& s) {
    return caf::actor_cast<caf::strong_actor_ptr>(s.actor);
  }

  /// What another instance's cluster port tells the lobby.
  void seat_elsewhere(const std::string& sid, const socket& s, bool online,
                      bool renewed = false) {
    self->send(lobby_of(room), atom::seats_v,
               voice_seat{room, sid, ptr(s), online, renewed},
               atom::remote_v);
    run();
  }

  /// Another instance wrote a member's record (its store's watch).
  void written_elsewhere(const session& s) {
    remote_batch b;
    b.changes.push_back(remote_change{
      room, s.session_id, std::make_shared<const std::string>(session_json(s))});
    self->send(lobby_of(room), atom::remote_v, std::move(b));
    run();
  }

  session member(const std::string& sid) {
    for (auto& m : get(room).sessions)
      if (m.session_id == sid)
        return m;
    FAIL("no member " << sid);
    return {};
  }

  void drop(socket& s) {
    self->send_exit(s.actor, caf::exit_reason::user_shutdown);
    run();
  }

  caf::expected<voice_welcome> hello(const socket& s, const std::string& sid,
                                     const std::string& token,
                                     bool resume = false,
                                     bool person_allowed = true) {
    auto h = self->request(lobby_of(room), caf::infinite, atom::hello_v,
                           voice_hello{sid, token, resume, person_allowed},
                           s.actor);
    run();
    caf::expected<voice_welcome> out{caf::error{}};
    h.receive([&](voice_welcome& w) { out = std::move(w); },
              [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  /// The voice messages a socket got, as "TYPE [session]" lines.
  static std::vector<std::string> said(const socket& s) {
    std::vector<std::string> out;
    for (auto& [text, silenced] : s.f->voice) {
      auto j = json::parse(text);
      auto line = j["type"].get<std::string>();
      if (j.contains("session_id"))
        line += " " + j["session_id"].get<std::string>();
      if (j.contains("peer"))
        line += " " + j["peer"]["session_id"].get<std::string>();
      if (j.contains("code"))
        line += " " + j["code"].get<std::string>();
      if (silenced)
        line += " (silenced)";
      out.push_back(line);
    }
    return out;
  }

  /// The latest table a socket got: session id -> "online" or "offline".
  static std::map<std::string, std::string> table(const socket& s) {
    std::map<std::string, std::string> out;
    if (!s.f->table)
      return out;
    for (auto& [sid, ptr] : s.f->table->sockets)
      out[sid] = ptr ? "online" : "offline";
    return out;
  }

  /// alice and bob, each a voice peer on its own socket.
  struct pair_of_peers {
    person_session alice, bob;
    socket a, b;
  };
  pair_of_peers two_peers() {
    pair_of_peers p{join_person("alice"), join_person("bob"), connect(),
                    connect()};
    REQUIRE(hello(p.a, p.alice.value.session_id, p.alice.token));
    REQUIRE(hello(p.b, p.bob.value.session_id, p.bob.token));
    return p;
  }

  static std::vector<std::string> ids(const voice_welcome& w) {
    std::vector<std::string> out;
    for (auto& p : w.peers)
      out.push_back(p.session_id);
    return out;
  }

  bool is_member(const std::string& sid) {
    for (auto& m : get(room).sessions)
      if (m.session_id == sid)
        return true;
    return false;
  }
};

} // namespace

TEST_CASE_METHOD(voice_fixture, "voice: a hello with a wrong token or an "
                 "unknown session is bad_token and changes nothing",
                 "[voice]") {
  open();
  auto alice = join_person("alice");
  auto bob = join_person("bob");
  auto s = connect();
  auto err = hello(s, alice.value.session_id, bob.token).error();
  CHECK(code_of(err) == ec::bad_token);
  err = hello(s, "no-such-session", alice.token).error();
  CHECK(code_of(err) == ec::bad_token);
  err = hello(s, alice.value.session_id, "").error();
  CHECK(code_of(err) == ec::bad_token);
  CHECK(s.f->voice.empty());
  CHECK_FALSE(s.f->table);
  CHECK(stats->voice_peers == 0);
  auto disk = on_disk();
  for (auto& m : disk.at(0).sessions)
    CHECK_FALSE(m.voice);
}

TEST_CASE_METHOD(voice_fixture, "voice: with frontend access tokens, a "
                 "person's hello without one is access_required and changes "
                 "nothing; a bot's run needs none", "[voice][access]") {
  use_real_dispatcher();
  std::vector<std::string> tokens;
  link->script = [&](const test::scripted_link::call& c) {
    tokens.push_back(json::parse(c.body).at("session_token").get<std::string>());
    return test::accepted("r-1");
  };
  open();
  add_provider("alpha", {"echo"});
  auto alice = join_person("alice");
  auto s = connect();
  auto err = hello(s, alice.value.session_id, alice.token, false, false).error();
  CHECK(code_of(err) == ec::access_required);
  CHECK(s.f->voice.empty());
  CHECK(stats->voice_peers == 0);
  for (auto& m : on_disk().at(0).sessions)
    CHECK_FALSE(m.voice);
  // A wrong session token is still bad_token: nothing is told before it.
  CHECK(code_of(hello(s, alice.value.session_id, "x", false, false).error())
        == ec::bad_token);
  auto bot = join(room, "echo", "Echo");
  REQUIRE(tokens.size() == 1);
  auto run = connect();
  CHECK(hello(run, bot.session_id, tokens[0], false, false));
  // With the socket's access cleared, the person speaks.
  CHECK(hello(s, alice.value.session_id, alice.token, false, true));
}

TEST_CASE_METHOD(voice_fixture, "voice: the first hello makes a voice peer "
                 "durably; the welcome lists the others, who hear peer_joined; "
                 "every socket gets the table", "[voice]") {
  open();
  auto alice = join_person("alice");
  auto bob = join_person("bob");
  auto a = connect();
  auto b = connect();
  auto wa = hello(a, alice.value.session_id, alice.token);
  REQUIRE(wa);
  CHECK(wa->session_id == alice.value.session_id);
  CHECK(wa->peers.empty());
  auto wb = hello(b, bob.value.session_id, bob.token);
  REQUIRE(wb);
  CHECK(ids(*wb) == std::vector<std::string>{alice.value.session_id});
  CHECK(wb->peers[0].nick == "alice");
  CHECK_FALSE(wb->peers[0].is_bot);
  CHECK(said(a) == std::vector<std::string>{"peer_joined "
                                             + bob.value.session_id});
  CHECK(said(b).empty());
  auto both = std::map<std::string, std::string>{
    {alice.value.session_id, "online"}, {bob.value.session_id, "online"}};
  CHECK(table(a) == both);
  CHECK(table(b) == both);
  // The table names the sockets themselves: a signal needs no lobby.
  CHECK(a.f->table->sockets.at(bob.value.session_id)
        == caf::actor_cast<caf::strong_actor_ptr>(b.actor));
  CHECK(stats->voice_peers == 2);
  auto disk = on_disk();
  for (auto& m : disk.at(0).sessions)
    CHECK(m.voice);
}

TEST_CASE_METHOD(voice_fixture, "voice: a second socket for a session takes "
                 "over and the first is told replaced; a hello without resume "
                 "is a peer_left and a peer_joined, with resume nothing",
                 "[voice]") {
  open();
  auto [alice, bob, a, b] = two_peers();
  a.f->voice.clear();
  // bob's page comes back on a new socket (resumed: it kept its media).
  auto b2 = connect();
  auto w = hello(b2, bob.value.session_id, bob.token, true);
  REQUIRE(w);
  CHECK(ids(*w) == std::vector<std::string>{alice.value.session_id});
  CHECK(said(b) == std::vector<std::string>{"replaced (silenced)"});
  CHECK(said(a).empty());
  CHECK(a.f->table->sockets.at(bob.value.session_id)
        == caf::actor_cast<caf::strong_actor_ptr>(b2.actor));
  // bob reloads: a fresh page, no media.
  auto b3 = connect();
  REQUIRE(hello(b3, bob.value.session_id, bob.token, false));
  CHECK(said(a) == std::vector<std::string>{"peer_left " + bob.value.session_id,
                                             "peer_joined "
                                               + bob.value.session_id});
  CHECK(stats->voice_peers == 2);
}

TEST_CASE_METHOD(voice_fixture, "voice: a dropped socket is no peer_left; a "
                 "person without a socket for session_idle_timeout leaves, "
                 "a hello in time keeps the session", "[voice]") {
  session_idle_timeout = 120s;
  open();
  auto [alice, bob, a, b] = two_peers();
  a.f->voice.clear();
  drop(b);
  CHECK(said(a).empty());
  CHECK(table(a).at(bob.value.session_id) == "offline");
  // Back after 100 s: the session stays.
  advance(100s);
  auto b2 = connect();
  REQUIRE(hello(b2, bob.value.session_id, bob.token, true));
  advance(60s);
  CHECK(is_member(bob.value.session_id));
  CHECK(table(a).at(bob.value.session_id) == "online");
  // Gone for good: 120 s after the socket dropped, the session ends.
  drop(b2);
  advance(119s);
  CHECK(is_member(bob.value.session_id));
  advance(1s);
  CHECK_FALSE(is_member(bob.value.session_id));
  CHECK(said(a) == std::vector<std::string>{"peer_left " + bob.value.session_id});
  CHECK(table(a).count(bob.value.session_id) == 0);
  CHECK(stats->voice_peers == 1);
  auto disk = on_disk();
  for (auto& m : disk.at(0).sessions)
    CHECK(m.session_id != bob.value.session_id);
  // A person who never had a socket ends the same way.
  auto carol = join_person("carol");
  advance(120s);
  CHECK_FALSE(is_member(carol.value.session_id));
  // alice, speaking all along, stays.
  CHECK(is_member(alice.value.session_id));
}

TEST_CASE_METHOD(voice_fixture, "voice: past max_voice_peers a hello is "
                 "voice_full; a peer already in may say hello again",
                 "[voice]") {
  max_voice_peers = 2;
  open();
  auto p1 = join_person("p1");
  auto p2 = join_person("p2");
  auto p3 = join_person("p3");
  auto s1 = connect();
  auto s2 = connect();
  auto s3 = connect();
  REQUIRE(hello(s1, p1.value.session_id, p1.token));
  REQUIRE(hello(s2, p2.value.session_id, p2.token));
  CHECK(code_of(hello(s3, p3.value.session_id, p3.token).error())
        == ec::voice_full);
  CHECK(said(s1).size() == 1); // p2's join only
  CHECK(hello(s3, p2.value.session_id, p2.token, true));
  // One leaves: room again; its socket speaks for no one.
  CHECK(ask<bool>(aut, atom::remove_v, room, p1.value.session_id));
  CHECK(said(s1).back() == "error bad_token (silenced)");
  auto s4 = connect();
  CHECK(hello(s4, p3.value.session_id, p3.token));
}

TEST_CASE_METHOD(voice_fixture, "voice: a moved bot is a peer_left at once; "
                 "its old run's token is refused and its socket told; the new "
                 "run's hello is a peer_joined", "[voice][redispatch]") {
  use_real_dispatcher();
  std::vector<std::string> tokens;
  link->script = [&](const test::scripted_link::call& c) {
    if (c.url.find("/join") != std::string::npos)
      tokens.push_back(
        json::parse(c.body).at("session_token").get<std::string>());
    return test::accepted("r-" + std::to_string(tokens.size()));
  };
  open();
  auto alpha = add_provider("alpha", {"echo"});
  auto alice = join_person("alice");
  auto a = connect();
  REQUIRE(hello(a, alice.value.session_id, alice.token));
  auto bot = join(room, "echo", "Echo");
  REQUIRE(tokens.size() == 1);
  auto run1 = connect();
  REQUIRE(hello(run1, bot.session_id, tokens[0]));
  a.f->voice.clear();
  advance(1s);
  add_provider("beta", {"echo"});
  // alpha goes: its member moves to beta.
  ask<bool>(reg, atom::deregister_v, alpha, std::string{}, true);
  run();
  REQUIRE(tokens.size() == 2);
  CHECK(said(a) == std::vector<std::string>{"peer_left " + bot.session_id});
  CHECK(said(run1) == std::vector<std::string>{"error bad_token (silenced)"});
  CHECK(code_of(hello(run1, bot.session_id, tokens[0]).error())
        == ec::bad_token);
  auto run2 = connect();
  auto w = hello(run2, bot.session_id, tokens[1]);
  REQUIRE(w);
  CHECK(ids(*w) == std::vector<std::string>{alice.value.session_id});
  CHECK(said(a) == std::vector<std::string>{"peer_left " + bot.session_id,
                                             "peer_joined " + bot.session_id});
}

TEST_CASE_METHOD(voice_fixture, "voice: a restart keeps people, tokens and "
                 "who the voice peers are; people's idle time starts anew",
                 "[voice]") {
  session_idle_timeout = 120s;
  open();
  auto [alice, bob, a, b] = two_peers();
  advance(100s);
  // The same data, as a restarted server loads it.
  shut_down(aut);
  shut_down(lobby_files.store, lobby_files.writer);
  start(on_disk());
  auto a2 = connect();
  auto w = hello(a2, alice.value.session_id, alice.token, true);
  REQUIRE(w);
  // bob has no socket yet, and is still a peer: alice keeps her call.
  CHECK(ids(*w) == std::vector<std::string>{bob.value.session_id});
  CHECK(table(a2).at(bob.value.session_id) == "offline");
  advance(100s); // 200 s since bob's socket, 100 s of them while down
  CHECK(is_member(bob.value.session_id));
  auto b2 = connect();
  CHECK(hello(b2, bob.value.session_id, bob.token, true));
  CHECK(said(a2).empty()); // resumed: nothing to announce
}


TEST_CASE_METHOD(voice_fixture, "voice, cluster: a socket seated here is told "
                 "to the other instances: a hello, a hello anew, a drop, a "
                 "resume, and every seat when they ask", "[voice][cluster]") {
  in_cluster();
  open();
  auto alice = join_person("alice");
  auto sid = alice.value.session_id;
  auto a = connect();
  REQUIRE(hello(a, sid, alice.token));
  REQUIRE(told->seats.size() == 1);
  auto& first = told->seats[0];
  CHECK(first.lobby_id == room);
  CHECK(first.session_id == sid);
  CHECK(first.socket == ptr(a));
  CHECK(first.online);
  CHECK_FALSE(first.renewed); // a first hello: the watch brings peer_joined
  auto a2 = connect();
  REQUIRE(hello(a2, sid, alice.token)); // a reload
  REQUIRE(told->seats.size() == 2);
  CHECK(told->seats[1].socket == ptr(a2));
  CHECK(told->seats[1].renewed);
  drop(a2);
  REQUIRE(told->seats.size() == 3);
  CHECK_FALSE(told->seats[2].online);
  CHECK(told->seats[2].socket == ptr(a2));
  auto a3 = connect();
  REQUIRE(hello(a3, sid, alice.token, true));
  REQUIRE(told->seats.size() == 4);
  CHECK(told->seats[3].online);
  CHECK_FALSE(told->seats[3].renewed);
  self->send(lobby_of(room), atom::seats_v);
  run();
  REQUIRE(told->seats.size() == 5);
  CHECK(told->seats[4].socket == ptr(a3));
  CHECK(told->seats[4].online);
  CHECK(told->other == 0);
}

TEST_CASE_METHOD(voice_fixture, "voice, cluster: a socket on another "
                 "instance is in the table and keeps its person's session; "
                 "a hello anew there is announced here; its loss starts the "
                 "idle timer; a hello there takes over from a socket here",
                 "[voice][cluster]") {
  session_idle_timeout = 60s;
  in_cluster();
  open();
  auto alice = join_person("alice");
  auto bob = join_person("bob");
  auto bob_id = bob.value.session_id;
  auto a = connect();
  REQUIRE(hello(a, alice.value.session_id, alice.token));
  // bob says hello on another instance: its record says voice (the
  // watch), its socket comes over the cluster port.
  auto far = far_socket();
  seat_elsewhere(bob_id, far, true);
  auto rec = member(bob_id);
  rec.voice = true;
  written_elsewhere(rec);
  CHECK(said(a) == std::vector<std::string>{"peer_joined " + bob_id});
  REQUIRE(a.f->table);
  CHECK(a.f->table->sockets.at(bob_id) == ptr(far));
  CHECK(stats->voice_peers == 2);
  advance(61s); // a socket elsewhere speaks for bob: not idle
  CHECK(is_member(bob_id));
  // bob's page reloads there: its peers here drop their connections.
  a.f->voice.clear();
  seat_elsewhere(bob_id, far, true, true);
  CHECK(said(a) == std::vector<std::string>{"peer_left " + bob_id,
                                             "peer_joined " + bob_id});
  // An offline seat of another socket changes nothing.
  auto other = far_socket();
  seat_elsewhere(bob_id, other, false);
  CHECK(table(a).at(bob_id) == "online");
  // The other instance dies: bob's socket is unreachable, bob is offline
  // (no peer_left), and his idle timer runs.
  a.f->voice.clear();
  self->send_exit(far.actor, caf::exit_reason::kill);
  run();
  CHECK(table(a).at(bob_id) == "offline");
  CHECK(said(a).empty());
  advance(59s);
  CHECK(is_member(bob_id));
  advance(2s);
  CHECK_FALSE(is_member(bob_id));
  CHECK(said(a) == std::vector<std::string>{"peer_left " + bob_id});
  // alice's page says hello on another instance: the socket here is
  // replaced, and the table names the one there.
  auto there = far_socket();
  seat_elsewhere(alice.value.session_id, there, true);
  CHECK(said(a).back() == "replaced (silenced)");
  CHECK(told->other == 0);
}

TEST_CASE_METHOD(voice_fixture, "voice, cluster: a person who joined and "
                 "said hello on another instance is a peer here at once",
                 "[voice][cluster]") {
  in_cluster();
  open();
  auto alice = join_person("alice");
  auto a = connect();
  REQUIRE(hello(a, alice.value.session_id, alice.token));
  session carol;
  carol.session_id = "s-carol";
  carol.nick = "carol";
  carol.voice = true;
  written_elsewhere(carol);
  CHECK(said(a) == std::vector<std::string>{"peer_joined s-carol"});
  CHECK(table(a).at("s-carol") == "offline");
  CHECK(stats->voice_peers == 2);
}
