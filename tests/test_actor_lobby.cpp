#include <catch2/catch.hpp>

#include <memory>

#include "actors/lobby.hpp"
#include "actors/registry.hpp"
#include "actors/snapshot_writer.hpp"
#include "actors/stats.hpp"
#include "fixture.hpp"

using namespace vb;
using namespace std::chrono_literals;

namespace {

/// What the mock dispatcher does and saw.
struct provider_script {
  /// Per provider name: "accept", "unavailable" or "reject".
  std::map<std::string, std::string> mode;
  std::vector<std::pair<std::string, dispatch_request>> joins;
  std::vector<std::string> stops;
  int next_run = 0;
};

/// A dispatcher that answers from the script instead of calling providers.
dispatcher_actor::behavior_type
mock_dispatcher(dispatcher_actor::pointer self,
                std::shared_ptr<provider_script> script) {
  return {
    [=](atom::join, const provider& p,
        const dispatch_request& req) -> caf::result<std::string> {
      script->joins.emplace_back(p.name, req);
      auto mode = script->mode.count(p.name) ? script->mode[p.name] : "accept";
      if (mode == "unavailable")
        return make_error(ec::unavailable, "refused");
      if (mode == "reject")
        return make_error(ec::rejected, "answered 500");
      return "run-" + std::to_string(++script->next_run);
    },
    [=](atom::stop, const provider&, const std::string& run_id) {
      script->stops.push_back(run_id);
      return true;
    },
    [=](atom::probe, const provider&) { return true; },
    [=](atom::done, uint64_t, const http_reply&) {
      FAIL("no HTTP client in this test");
    },
    [=](atom::event, const provider&, const std::string&,
        const lobby_event&) {},
    [=](atom::registration, const std::string&, bot_host_actor) {
      return true;
    },
    [=](atom::deregister, const std::string&) {},
  };
}

struct lobby_fixture : test::fixture {
  test::temp_dir dir;
  std::shared_ptr<server_stats> stats = std::make_shared<server_stats>();
  std::shared_ptr<provider_script> script
    = std::make_shared<provider_script>();
  snapshot_writer_actor provider_writer;
  snapshot_writer_actor lobby_writer;
  registry_actor reg;
  dispatcher_actor disp;
  lobby_directory_actor aut;

  lobby_fixture() {
    provider_writer = sys.spawn(snapshot_writer, dir.path, providers_file_name,
                                stats);
    registry_config rc;
    rc.flush_interval = 3600s;
    reg = sys.spawn(registry, provider_writer, std::vector<provider>{}, rc,
                    stats);
    disp = sys.spawn(mock_dispatcher, script);
    run();
  }

  void start(std::vector<lobby> initial = {}) {
    lobby_writer = sys.spawn(snapshot_writer, dir.path, lobbies_file_name,
                             stats);
    aut = sys.spawn(lobby_directory, lobby_writer, std::move(initial),
                    lobby_peers{reg, disp}, stats);
    run();
  }

  std::string add_provider(const std::string& name,
                           std::vector<std::string> bots) {
    provider_registration r;
    r.name = name;
    r.base_url = "http://127.0.0.1:9000/" + name;
    for (auto& b : bots)
      r.bots.push_back(bot_info{b, ""});
    return ask<std::string>(reg, atom::registration_v, r);
  }

  lobby create(const std::string& name, bool is_private = false) {
    return ask<lobby_created>(aut, atom::create_v, lobby_create{name, is_private})
      .value;
  }

  session join(const std::string& lobby_id, const std::string& bot,
               const std::string& nick, const std::string& provider_id = {}) {
    return ask<session>(aut, atom::join_v, lobby_id,
                        bot_join{bot, nick, provider_id});
  }

  caf::error join_error(const std::string& lobby_id, const std::string& bot,
                        const std::string& nick) {
    return ask_error<session>(aut, atom::join_v, lobby_id,
                              bot_join{bot, nick, ""});
  }

  lobby get(const std::string& id) {
    return ask<lobby>(aut, atom::get_v, id);
  }

  ~lobby_fixture() {
    for (auto a : {caf::actor_cast<caf::actor>(aut),
                   caf::actor_cast<caf::actor>(disp),
                   caf::actor_cast<caf::actor>(reg),
                   caf::actor_cast<caf::actor>(lobby_writer),
                   caf::actor_cast<caf::actor>(provider_writer)})
      if (a)
        self->send_exit(a, caf::exit_reason::user_shutdown);
    run();
  }
};

} // namespace

TEST_CASE_METHOD(lobby_fixture, "lobby: create is idempotent by name and "
                 "durable", "[lobby]") {
  start();
  auto first = ask<lobby_created>(aut, atom::create_v, lobby_create{"room", false});
  CHECK(first.created);
  auto again = ask<lobby_created>(aut, atom::create_v, lobby_create{"room", true});
  CHECK_FALSE(again.created);
  CHECK(again.value.id == first.value.id);
  CHECK_FALSE(again.value.is_private);
  auto disk = load_lobbies(dir.path);
  REQUIRE(disk.size() == 1);
  CHECK(disk[0].id == first.value.id);
  CHECK(stats->lobbies == 1);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: private lobbies are not listed",
                 "[lobby]") {
  start();
  create("public");
  auto hidden = create("hidden", true);
  auto listed = ask<std::vector<lobby>>(aut, atom::list_v);
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].name == "public");
  CHECK(get(hidden.id).name == "hidden");
  CHECK(code_of(ask_error<lobby>(aut, atom::get_v, std::string{"nope"}))
        == ec::not_found);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: a bot joins only after the provider "
                 "accepted, durably", "[lobby]") {
  start();
  auto pid = add_provider("alpha", {"echo"});
  auto room = create("room");
  auto s = join(room.id, "echo", "Echo");
  CHECK(s.is_bot);
  CHECK(s.provider_id == pid);
  CHECK(s.run_id == "run-1");
  REQUIRE(script->joins.size() == 1);
  CHECK(script->joins[0].second.lobby_id == room.id);
  CHECK(script->joins[0].second.session_id == s.session_id);
  CHECK(script->joins[0].second.nick == "Echo");
  CHECK(get(room.id).sessions.size() == 1);
  auto disk = load_lobbies(dir.path);
  REQUIRE(disk.at(0).sessions.size() == 1);
  CHECK(disk[0].sessions[0].run_id == "run-1");
  CHECK(stats->members == 1);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: 404 only for an unknown lobby or bot",
                 "[lobby]") {
  start();
  add_provider("alpha", {"echo"});
  auto room = create("room");
  auto err = join_error("no-such-lobby", "echo", "x");
  CHECK(code_of(err) == ec::not_found);
  err = join_error(room.id, "poet", "x");
  CHECK(code_of(err) == ec::not_found);
  CHECK(script->joins.empty());
}

TEST_CASE_METHOD(lobby_fixture, "lobby: the same bot and nick again returns "
                 "the existing session", "[lobby]") {
  start();
  add_provider("alpha", {"echo"});
  auto room = create("room");
  // Two identical joins in flight at once, then a retry.
  auto h1 = self->request(aut, caf::infinite, atom::join_v, room.id,
                          bot_join{"echo", "Echo", ""});
  auto h2 = self->request(aut, caf::infinite, atom::join_v, room.id,
                          bot_join{"echo", "Echo", ""});
  run();
  std::string id1, id2;
  h1.receive([&](session& s) { id1 = s.session_id; }, [](caf::error&) {});
  h2.receive([&](session& s) { id2 = s.session_id; }, [](caf::error&) {});
  CHECK_FALSE(id1.empty());
  CHECK(id1 == id2);
  CHECK(join(room.id, "echo", "Echo").session_id == id1);
  CHECK(script->joins.size() == 1);
  CHECK(get(room.id).sessions.size() == 1);
  // Another nick is another member.
  CHECK(join(room.id, "echo", "Echo 2").session_id != id1);
  CHECK(get(room.id).sessions.size() == 2);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: an unreachable provider means 503 and "
                 "no member", "[lobby]") {
  start();
  auto pid = add_provider("alpha", {"echo"});
  script->mode["alpha"] = "unavailable";
  auto room = create("room");
  CHECK(code_of(join_error(room.id, "echo", "Echo")) == ec::unavailable);
  CHECK(get(room.id).sessions.empty());
  CHECK(load_lobbies(dir.path).at(0).sessions.empty());
  // The registry now knows it as unreachable.
  CHECK(ask<provider>(reg, atom::get_v, pid).status
        == provider_status::unreachable);
  // Back online: the next join works and the provider is online again.
  script->mode["alpha"] = "accept";
  join(room.id, "echo", "Echo");
  CHECK(ask<provider>(reg, atom::get_v, pid).status == provider_status::online);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: a rejecting provider means 502 and no "
                 "member", "[lobby]") {
  start();
  add_provider("alpha", {"echo"});
  script->mode["alpha"] = "reject";
  auto room = create("room");
  CHECK(code_of(join_error(room.id, "echo", "Echo")) == ec::rejected);
  CHECK(get(room.id).sessions.empty());
}

TEST_CASE_METHOD(lobby_fixture, "lobby: a failed join is tried once on another "
                 "online provider", "[lobby]") {
  start();
  add_provider("alpha", {"echo"});
  advance(1s);
  auto beta = add_provider("beta", {"echo"});
  // beta was seen last, so it is tried first.
  script->mode["beta"] = "unavailable";
  auto room = create("room");
  auto s = join(room.id, "echo", "Echo");
  CHECK(s.provider_id != beta);
  CHECK(script->joins.size() == 2);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: a bot member that leaves is stopped at "
                 "its provider", "[lobby]") {
  start();
  add_provider("alpha", {"echo"});
  auto room = create("room");
  auto s = join(room.id, "echo", "Echo");
  CHECK(ask<bool>(aut, atom::remove_v, room.id, s.session_id));
  CHECK(get(room.id).sessions.empty());
  CHECK(load_lobbies(dir.path).at(0).sessions.empty());
  CHECK(script->stops == std::vector<std::string>{"run-1"});
  CHECK(code_of(ask_error<bool>(aut, atom::remove_v, room.id, s.session_id))
        == ec::not_found);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: people join and leave, and are not "
                 "written to disk", "[lobby]") {
  start();
  add_provider("alpha", {"echo"});
  auto room = create("room");
  auto alice = ask<session>(aut, atom::add_v, room.id, std::string{"alice"});
  CHECK_FALSE(alice.is_bot);
  auto bot = join(room.id, "echo", "Echo");
  CHECK(get(room.id).sessions.size() == 2);
  auto disk = load_lobbies(dir.path);
  REQUIRE(disk.at(0).sessions.size() == 1);
  CHECK(disk[0].sessions[0].session_id == bot.session_id);
  // Leaving without the lobby id finds the lobby.
  auto lobby_id = ask<std::string>(aut, atom::leave_v,
                                   leave_request{alice.session_id, ""});
  CHECK(lobby_id == room.id);
  CHECK(get(room.id).sessions.size() == 1);
  CHECK(code_of(ask_error<std::string>(aut, atom::leave_v,
                                       leave_request{"gone", ""}))
        == ec::not_found);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: lobbies and bot members come back "
                 "from disk", "[lobby]") {
  lobby saved;
  saved.id = "11111111-2222-4333-8444-555555555555";
  saved.name = "room";
  session s;
  s.session_id = "s1";
  s.nick = "Echo";
  s.is_bot = true;
  s.bot_name = "echo";
  s.provider_id = "p1";
  s.run_id = "r1";
  saved.sessions.push_back(s);
  start({saved});
  auto back = get(saved.id);
  REQUIRE(back.sessions.size() == 1);
  CHECK(back.sessions[0].run_id == "r1");
  // Creating it again by name gives the loaded one.
  CHECK(create("room").id == saved.id);
  CHECK(stats->members == 1);
}
