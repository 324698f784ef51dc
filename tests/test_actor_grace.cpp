// The empty-lobby grace (--empty-lobby-grace) on the deterministic
// scheduler: a lobby that had people and has none keeps its bots for exactly
// the grace, then each leaves as a bot leave does (its run stopped, the leave
// on disk) with member_left saying empty_lobby; a person in time keeps them;
// off by default; bots alone are never stopped; a restart re-arms the full
// grace; in cluster mode only the instance on duty acts.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>

#include "lobby_fixture.hpp"
#include "model/snapshot_codec.hpp"

using namespace vb;
using namespace vb::test;
using namespace std::chrono_literals;

namespace {

/// A duty port a test turns on and off (cluster mode: the sweeper key).
struct switch_duty final : duty_port {
  std::shared_ptr<bool> on = std::make_shared<bool>(true);
  bool on_duty() const override {
    return *on;
  }
};

struct grace_fixture : events_fixture {
  std::string room;

  grace_fixture() {
    empty_lobby_grace = 30s;
    // People leave when a test says so (one test times them out).
    session_idle_timeout = 1000h;
  }

  void open() {
    start();
    room = create("room").id;
    add_provider("alpha", {"echo", "greeter"});
  }

  session bot(const std::string& nick, const std::string& name = "echo") {
    return join(room, name, nick);
  }

  session person(const std::string& nick) {
    return events_fixture::person(room, nick);
  }

  void leaves(const session& s) {
    REQUIRE(ask<bool>(aut, atom::remove_v, room, s.session_id));
  }

  bool is_member(const std::string& sid) {
    for (auto& m : get(room).sessions)
      if (m.session_id == sid)
        return true;
    return false;
  }

  /// `s` stays until the grace's last second and is gone at its end.
  void leaves_when_grace_ends(const session& s) {
    advance(29s);
    CHECK(is_member(s.session_id));
    advance(1s);
    CHECK_FALSE(is_member(s.session_id));
  }

  bool on_disk_member(const std::string& sid) {
    for (auto& l : on_disk())
      for (auto& m : l.sessions)
        if (m.session_id == sid)
          return true;
    return false;
  }

  /// The reason each member_left a subscriber saw came with ("" for none),
  /// by nick.
  static std::vector<std::string> lefts(const feed& f) {
    std::vector<std::string> out;
    for (size_t i = 0; i < f.events.size(); ++i) {
      auto& ev = f.events[i];
      if (ev.type != lobby_event_type::member_left)
        continue;
      auto r = f.reasons.find(i);
      out.push_back(ev.member.nick + ": "
                    + (r == f.reasons.end() ? "" : to_string(r->second)));
    }
    return out;
  }

  /// Restarts on the data on disk, as a restarted server would.
  void restart() {
    shut_down(aut);
    shut_down(lobby_files.store, lobby_files.writer);
    start(on_disk());
  }
};

} // namespace

TEST_CASE_METHOD(grace_fixture, "grace: once its last person leaves, a "
                 "lobby's bots leave after exactly the grace, their runs "
                 "stopped, durably, member_left saying empty_lobby",
                 "[grace]") {
  open();
  auto echo = bot("Echo");
  auto greeter = bot("Greeter", "greeter");
  auto alice = person("alice");
  auto f = subscribe(room);
  leaves(alice);
  advance(29s);
  CHECK(is_member(echo.session_id));
  CHECK(is_member(greeter.session_id));
  CHECK(script->stops.empty());
  advance(1s);
  CHECK_FALSE(is_member(echo.session_id));
  CHECK_FALSE(is_member(greeter.session_id));
  auto stops = script->stops;
  std::sort(stops.begin(), stops.end());
  CHECK(stops == strings{echo.run_id, greeter.run_id});
  // The person's own leave keeps its shape; the bots' say why.
  CHECK(lefts(*f)
        == strings{"alice: ", "Echo: empty_lobby", "Greeter: empty_lobby"});
  CHECK(f->seen
        == strings{"members", "member_left", "member_left (empty_lobby)",
                   "member_left (empty_lobby)"});
  CHECK(stats->empty_lobby_stops == 2);
  CHECK_FALSE(on_disk_member(echo.session_id));
  CHECK_FALSE(on_disk_member(greeter.session_id));
  // Nothing is left to stop: no timer comes back.
  advance(1h);
  CHECK(script->stops.size() == 2);
}

TEST_CASE_METHOD(grace_fixture, "grace: a person joining within it keeps the "
                 "bots; the next one leaving starts the full grace again",
                 "[grace]") {
  open();
  auto echo = bot("Echo");
  auto alice = person("alice");
  leaves(alice);
  advance(20s);
  auto bob = person("bob");
  advance(1h);
  CHECK(is_member(echo.session_id));
  CHECK(script->stops.empty());
  leaves(bob);
  leaves_when_grace_ends(echo);
  CHECK(script->stops == strings{echo.run_id});
}

TEST_CASE_METHOD(grace_fixture, "grace: a person who times out (no socket "
                 "for session_idle_timeout) starts it as a DELETE does",
                 "[grace]") {
  session_idle_timeout = 60s;
  open();
  auto echo = bot("Echo");
  auto alice = person("alice");
  advance(60s); // alice never said hello: her session ends
  REQUIRE_FALSE(is_member(alice.session_id));
  leaves_when_grace_ends(echo);
  CHECK(script->stops == strings{echo.run_id});
}

TEST_CASE_METHOD(grace_fixture, "grace: off by default (0): the bots of a "
                 "lobby whose people left stay", "[grace]") {
  empty_lobby_grace = lobby_peers{}.empty_lobby_grace;
  REQUIRE(empty_lobby_grace == caf::timespan{0});
  open();
  auto echo = bot("Echo");
  auto alice = person("alice");
  leaves(alice);
  advance(24h);
  CHECK(is_member(echo.session_id));
  CHECK(script->stops.empty());
  CHECK(stats->empty_lobby_stops == 0);
}

TEST_CASE_METHOD(grace_fixture, "grace: a lobby that never had people keeps "
                 "its bots for ever", "[grace]") {
  open();
  auto echo = bot("Echo");
  auto greeter = bot("Greeter", "greeter");
  advance(24h);
  CHECK(is_member(echo.session_id));
  CHECK(is_member(greeter.session_id));
  CHECK(script->stops.empty());
  REQUIRE(on_disk().size() == 1);
  CHECK_FALSE(on_disk()[0].had_people);
}

TEST_CASE_METHOD(grace_fixture, "grace: a bot joining an empty lobby that had "
                 "people does not keep it: it does not extend the grace, and "
                 "starts one when no bot was left", "[grace]") {
  open();
  auto echo = bot("Echo");
  auto alice = person("alice");
  leaves(alice);
  advance(20s);
  auto greeter = bot("Greeter", "greeter");
  advance(10s); // the grace of alice's leave, not of greeter's join
  CHECK_FALSE(is_member(echo.session_id));
  CHECK_FALSE(is_member(greeter.session_id));
  // Empty, no bot: a bot joining now gets the grace, then leaves.
  auto late = bot("Late");
  leaves_when_grace_ends(late);
  CHECK(script->stops.size() == 3);
}

TEST_CASE_METHOD(grace_fixture, "grace: that a lobby had people survives a "
                 "restart; the grace starts anew from the start (downtime "
                 "does not count)", "[grace]") {
  open();
  auto echo = bot("Echo");
  auto alice = person("alice");
  REQUIRE(on_disk().at(0).had_people);
  leaves(alice);
  advance(20s);
  restart();
  advance(29s); // 49 s since alice left, 29 s of them since the start
  CHECK(is_member(echo.session_id));
  CHECK(script->stops.empty());
  advance(1s);
  CHECK_FALSE(is_member(echo.session_id));
  CHECK(script->stops == strings{echo.run_id});
  CHECK_FALSE(on_disk_member(echo.session_id));
  CHECK(on_disk().at(0).had_people);
}

TEST_CASE_METHOD(grace_fixture, "grace: data from before the grace (a "
                 "lobby header without had_people) loads; a lobby with people "
                 "in it is written as having had them", "[grace]") {
  lobby old;
  old.id = "00000000-0000-4000-8000-000000000001";
  old.name = "old";
  session p;
  p.session_id = "00000000-0000-4000-8000-000000000002";
  p.nick = "alice";
  old.sessions = {p};
  lobby bots_only;
  bots_only.id = "00000000-0000-4000-8000-000000000003";
  bots_only.name = "bots only";
  // The snapshot an older server wrote: no had_people anywhere.
  auto text = encode_lobbies({old, bots_only});
  REQUIRE(text.find("had_people") == std::string::npos);
  {
    std::ofstream out{dir.path + "/" + lobbies_file_name};
    out << text;
  }
  auto before = on_disk();
  REQUIRE(before.size() == 2);
  CHECK_FALSE(before[0].had_people);
  CHECK_FALSE(before[1].had_people);
  start(before);
  auto after = on_disk();
  REQUIRE(after.size() == 2);
  CHECK(after[0].had_people);
  CHECK(after[0].sessions.size() == 1);
  CHECK_FALSE(after[1].had_people);
}

TEST_CASE_METHOD(grace_fixture, "grace, cluster: only the instance on duty "
                 "stops the bots; another arms the grace again, and acts once "
                 "it is on duty", "[grace][cluster]") {
  auto port = std::make_shared<switch_duty>();
  *port->on = false;
  duty = port;
  open();
  auto echo = bot("Echo");
  auto alice = person("alice");
  leaves(alice);
  advance(30s);
  advance(1h);
  CHECK(is_member(echo.session_id));
  CHECK(script->stops.empty());
  // The sweeper died; this instance holds the key now.
  *port->on = true;
  advance(30s);
  CHECK_FALSE(is_member(echo.session_id));
  CHECK(script->stops == strings{echo.run_id});
}
