// The lobby directory and its lobbies: joins, leaves, failover, limits,
// loading, events and cluster changes (fixtures: lobby_fixture.hpp).
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>

#include "lobby_fixture.hpp"
#include "model/journal_codec.hpp"
#include "model/secret.hpp"
#include "model/snapshot_codec.hpp"
#include "model/validate.hpp"

using namespace vb;
using namespace vb::test;
using namespace std::chrono_literals;

TEST_CASE_METHOD(lobby_fixture, "lobby: create is idempotent by name and "
                 "durable", "[lobby]") {
  start();
  auto first = ask<lobby_created>(aut, atom::create_v, lobby_create{"room", false});
  CHECK(first.created);
  auto again = ask<lobby_created>(aut, atom::create_v, lobby_create{"room", true});
  CHECK_FALSE(again.created);
  CHECK(again.value.id == first.value.id);
  CHECK_FALSE(again.value.is_private);
  auto disk = on_disk();
  REQUIRE(disk.size() == 1);
  CHECK(disk[0].id == first.value.id);
  CHECK(stats->lobbies == 1);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: private lobbies are not listed",
                 "[lobby]") {
  start();
  create("public");
  auto hidden = create("hidden", true);
  auto listed = ask<lobby_listing_ptr>(aut, atom::list_v)->lobbies;
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
  auto disk = on_disk();
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
  CHECK(on_disk().at(0).sessions.empty());
  // Back: the next join works.
  script->mode["alpha"] = "accept";
  join(room.id, "echo", "Echo");
  CHECK(get(room.id).sessions.size() == 1);
  (void) pid;
}

TEST_CASE_METHOD(lobby_fixture, "lobby: a lobby never reports provider health "
                 "itself", "[lobby]") {
  start();
  auto pid = add_provider("alpha", {"echo"});
  auto room = create("room");
  advance(10s);
  REQUIRE(stale(pid));
  // The mock dispatcher tells the registry nothing: neither a failed join
  // nor an accepted one changes what the registry knows.
  script->mode["alpha"] = "unavailable";
  CHECK(code_of(join_error(room.id, "echo", "Echo")) == ec::unavailable);
  CHECK(status_of(pid) == provider_status::online);
  script->mode["alpha"] = "accept";
  join(room.id, "echo", "Echo");
  CHECK(stale(pid));
}

TEST_CASE_METHOD(lobby_fixture, "lobby: a failed dispatch makes the provider "
                 "unreachable through the dispatcher", "[lobby]") {
  use_real_dispatcher();
  start();
  auto pid = add_provider("alpha", {"echo"});
  auto room = create("room");
  link->script = [](auto&) { return test::no_answer("connection refused"); };
  CHECK(code_of(join_error(room.id, "echo", "Echo")) == ec::unavailable);
  CHECK(get(room.id).sessions.empty());
  CHECK(status_of(pid) == provider_status::unreachable);
  // Back: the provider accepts, and the dispatcher marks it seen (online).
  advance(10s);
  link->script = [](auto&) { return test::accepted("r-1"); };
  auto s = join(room.id, "echo", "Echo");
  CHECK(s.run_id == "r-1");
  CHECK(status_of(pid) == provider_status::online);
  CHECK_FALSE(stale(pid));
  CHECK(link->count("/alpha/bots/echo/join") == 2);
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

TEST_CASE_METHOD(lobby_fixture, "lobby: a join whose record cannot be written "
                 "is 503, is not visible, and its run is stopped; a retry gets "
                 "the same until the disk works, then 200 once", "[lobby]") {
  auto store = sys.spawn(test::memory_store);
  start_on(store);
  add_provider("alpha", {"echo"});
  auto room = create("room");
  test::state_of(store).failing = true;
  CHECK(code_of(join_error(room.id, "echo", "Echo")) == ec::storage_failed);
  CHECK(get(room.id).sessions.empty());
  CHECK(ask<lobby_listing_ptr>(aut, atom::list_v)->lobbies.at(0).sessions.empty());
  CHECK(stats->members == 0);
  CHECK(script->stops == std::vector<std::string>{"run-1"});
  // The retry: the same, never a 200 for what is not durable.
  CHECK(code_of(join_error(room.id, "echo", "Echo")) == ec::storage_failed);
  CHECK(get(room.id).sessions.empty());
  CHECK(script->stops == std::vector<std::string>{"run-1", "run-2"});
  test::state_of(store).failing = false;
  auto s = join(room.id, "echo", "Echo");
  CHECK(s.run_id == "run-3");
  CHECK(join(room.id, "echo", "Echo").session_id == s.session_id);
  CHECK(get(room.id).sessions.size() == 1);
  CHECK(script->joins.size() == 3);
  auto& records = test::state_of(store).records;
  CHECK(records.size() == 2); // the lobby, the one member
  self->send_exit(store, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: a lobby or a leave that cannot be "
                 "written is 503 and changes nothing", "[lobby]") {
  auto store = sys.spawn(test::memory_store);
  start_on(store);
  add_provider("alpha", {"echo"});
  test::state_of(store).failing = true;
  auto err = ask_error<lobby_created>(aut, atom::create_v,
                                      lobby_create{"room", false});
  CHECK(code_of(err) == ec::storage_failed);
  CHECK(ask<lobby_listing_ptr>(aut, atom::list_v)->lobbies.empty());
  test::state_of(store).failing = false;
  auto room = create("room");
  auto s = join(room.id, "echo", "Echo");
  test::state_of(store).failing = true;
  err = ask_error<bool>(aut, atom::remove_v, room.id, s.session_id);
  CHECK(code_of(err) == ec::storage_failed);
  CHECK(get(room.id).sessions.size() == 1);
  CHECK(script->stops.empty());
  self->send_exit(store, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: a journal compacted under joins "
                 "loses and doubles nothing", "[lobby]") {
  auto seed = std::make_shared<journal_store_seed>();
  load_lobbies(dir.path, *seed);
  seed->max_bytes = 4096;
  lobby_files = spawn_journal_store(sys, seed, stats, false);
  aut = sys.spawn(lobby_directory, std::vector<lobby_image>{},
                  lobby_peers{reg, disp, lobby_files.store}, stats);
  self->send(reg, atom::peers_v, aut, disp);
  run();
  add_provider("alpha", {"echo"});
  auto room = create("room");
  std::vector<std::string> ids;
  for (int i = 0; i < 60; ++i)
    ids.push_back(join(room.id, "echo", "Echo " + std::to_string(i)).session_id);
  auto& js = stats->journal(lobbies_file_name);
  CHECK(js.compactions >= 2);
  CHECK(js.compaction_failures == 0);
  auto disk = on_disk();
  REQUIRE(disk.size() == 1);
  std::vector<std::string> back;
  for (auto& m : disk[0].sessions)
    back.push_back(m.session_id);
  CHECK(back == ids);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: a failed join is tried once on another "
                 "online provider", "[lobby]") {
  use_real_dispatcher();
  start();
  auto alpha = add_provider("alpha", {"echo"});
  advance(1s);
  add_provider("beta", {"echo"});
  // beta was seen last, so it is tried first.
  link->script = [](const test::scripted_link::call& c) {
    if (c.url.find("/beta/") != std::string::npos)
      return test::no_answer("connection refused");
    return test::accepted("r-1");
  };
  auto room = create("room");
  auto s = join(room.id, "echo", "Echo");
  CHECK(s.provider_id == alpha);
  CHECK(s.run_id == "r-1");
  CHECK(link->count("/beta/bots/echo/join") == 1);
  CHECK(link->count("/alpha/bots/echo/join") == 1);
  CHECK(get(room.id).sessions.size() == 1);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: a bot member that leaves is stopped at "
                 "its provider", "[lobby]") {
  start();
  add_provider("alpha", {"echo"});
  auto room = create("room");
  auto s = join(room.id, "echo", "Echo");
  CHECK(ask<bool>(aut, atom::remove_v, room.id, s.session_id));
  CHECK(get(room.id).sessions.empty());
  CHECK(on_disk().at(0).sessions.empty());
  CHECK(script->stops == std::vector<std::string>{"run-1"});
  CHECK(code_of(ask_error<bool>(aut, atom::remove_v, room.id, s.session_id))
        == ec::not_found);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: past max_lobbies a creation is "
                 "refused and changes nothing", "[lobby]") {
  max_lobbies = 2;
  start();
  auto a = create("a");
  create("b");
  auto err = ask_error<lobby_created>(aut, atom::create_v,
                                      lobby_create{"c", false});
  CHECK(code_of(err) == ec::full);
  CHECK(on_disk().size() == 2);
  CHECK(stats->lobbies == 2);
  // An existing name is still answered with its lobby.
  auto again = ask<lobby_created>(aut, atom::create_v, lobby_create{"a", false});
  CHECK_FALSE(again.created);
  CHECK(again.value.id == a.id);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: past max_members people and bots "
                 "are refused and nothing is dispatched", "[lobby]") {
  max_members = 2;
  start();
  add_provider("alpha", {"echo"});
  auto room = create("room");
  ask<person_session>(aut, atom::add_v, room.id, std::string{"alice"});
  auto bot = join(room.id, "echo", "Echo");
  CHECK(code_of(ask_error<person_session>(aut, atom::add_v, room.id,
                                          std::string{"bob"}))
        == ec::full);
  CHECK(code_of(join_error(room.id, "echo", "Echo 2")) == ec::full);
  CHECK(script->joins.size() == 1);
  CHECK(get(room.id).sessions.size() == 2);
  // The same join again is its existing member, full or not.
  CHECK(join(room.id, "echo", "Echo").session_id == bot.session_id);
  // A member leaves: there is room again.
  ask<std::string>(aut, atom::leave_v, leave_request{bot.session_id, room.id});
  run();
  CHECK(join(room.id, "echo", "Echo 3").is_bot);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: providers coming and going leave no "
                 "records behind in a lobby", "[lobby]") {
  start();
  auto room = create("room");
  auto l = ask<lobby_actor>(aut, atom::subscribe_v, room.id);
  auto* impl = dynamic_cast<lobby_actor::stateful_pointer<lobby_state>>(
    caf::actor_cast<caf::abstract_actor*>(l));
  REQUIRE(impl != nullptr);
  auto& st = impl->state;
  for (int i = 0; i < 5; ++i) {
    auto pid = add_provider("p" + std::to_string(i), {"echo"});
    auto s = join(room.id, "echo", "Echo " + std::to_string(i), pid);
    CHECK(st.transports.count(pid) == 1);
    ask<std::string>(aut, atom::leave_v, leave_request{s.session_id, room.id});
    run();
    CHECK(st.transports.count(pid) == 0);
  }
  // A member that stays keeps its provider's transport.
  auto pid = add_provider("stays", {"echo"});
  join(room.id, "echo", "Echo", pid);
  CHECK(st.transports.size() == 1);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: people join durably with a token "
                 "only this answer shows (the disk keeps its hash), and leave "
                 "durably", "[lobby]") {
  start();
  add_provider("alpha", {"echo"});
  auto room = create("room");
  auto alice = ask<person_session>(aut, atom::add_v, room.id,
                                   std::string{"alice"});
  CHECK_FALSE(alice.value.is_bot);
  CHECK(alice.token.size() >= 22); // 128 bits or more, base64url
  CHECK(alice.value.token_hash.empty());
  auto bob = ask<person_session>(aut, atom::add_v, room.id, std::string{"bob"});
  CHECK(bob.token != alice.token);
  auto bot = join(room.id, "echo", "Echo");
  CHECK(bot.token_hash.empty());
  auto members = get(room.id).sessions;
  CHECK(members.size() == 3);
  for (auto& m : members)
    CHECK(m.token_hash.empty() == false); // the lobby keeps it ...
  auto disk = on_disk();
  REQUIRE(disk.at(0).sessions.size() == 3);
  for (auto& m : disk[0].sessions) {
    // ... and the journal, as a hash that only the member's token matches.
    INFO(m.nick);
    if (m.session_id == alice.value.session_id) {
      CHECK(token_matches(alice.token, m.token_hash));
      CHECK_FALSE(token_matches(bob.token, m.token_hash));
    }
  }
  // No token in the data files.
  auto files = test::read_dir_text(dir.path);
  CHECK(files.find(alice.token) == std::string::npos);
  CHECK(files.find(bob.token) == std::string::npos);
  // Leaving without the lobby id finds the lobby; the leave is durable.
  auto lobby_id = ask<std::string>(aut, atom::leave_v,
                                   leave_request{alice.value.session_id, ""});
  CHECK(lobby_id == room.id);
  CHECK(get(room.id).sessions.size() == 2);
  CHECK(on_disk().at(0).sessions.size() == 2);
  CHECK(code_of(ask_error<std::string>(aut, atom::leave_v,
                                       leave_request{"gone", ""}))
        == ec::not_found);
}

TEST_CASE_METHOD(lobby_fixture, "lobby: lobbies and bot members come back "
                 "from disk", "[lobby]") {
  auto saved = test::make_lobby("11111111-2222-4333-8444-555555555555", "room");
  saved.sessions.push_back(test::bot_member("s1", "Echo", "echo", "p1", "r1"));
  start({saved});
  auto back = get(saved.id);
  REQUIRE(back.sessions.size() == 1);
  CHECK(back.sessions[0].run_id == "r1");
  // Creating it again by name gives the loaded one.
  CHECK(create("room").id == saved.id);
  CHECK(stats->members == 1);
}

// -- live lobby events ---------------------------------------------------------


TEST_CASE_METHOD(events_fixture, "lobby events: a subscriber gets the members, "
                 "then joins, leaves and chat in order", "[lobby][events]") {
  start();
  add_provider("alpha", {"echo", "greeter"});
  auto room = create("room");
  auto echo = join(room.id, "echo", "Echo");
  auto alice = person(room.id, "alice");
  CHECK(code_of(ask_error<lobby_actor>(aut, atom::subscribe_v,
                                       std::string{"no-such-lobby"}))
        == ec::not_found);

  auto f = subscribe(room.id);
  REQUIRE(f->seen == strings{"members"});
  REQUIRE(f->members.sessions.size() == 2);
  CHECK(f->members.id == room.id);
  CHECK(f->members.sessions[0].session_id == echo.session_id);
  CHECK(f->members.sessions[1].session_id == alice.session_id);

  auto bob = person(room.id, "bob");
  auto greeter = join(room.id, "greeter", "Greeter");
  CHECK(ask<bool>(aut, atom::remove_v, room.id, alice.session_id));
  self->send(lobby_of(room.id), atom::chat_v, std::string{"carol"},
             std::string{"hello"});
  run();
  REQUIRE(f->seen == strings{"members", "member_joined", "member_joined",
                             "member_left", "chat"});
  CHECK(f->events[0].member.session_id == bob.session_id);
  CHECK_FALSE(f->events[0].member.is_bot);
  CHECK(f->events[1].member.session_id == greeter.session_id);
  CHECK(f->events[1].member.is_bot);
  CHECK(f->events[1].member.run_id == greeter.run_id);
  CHECK(f->events[2].member.nick == "alice");
  CHECK(f->events[3].member.nick == "carol");
  CHECK(f->events[3].member.session_id.empty());
  CHECK(f->events[3].text == "hello");
  for (auto& ev : f->events) {
    CHECK(ev.lobby_id == room.id);
    CHECK(ev.at > 0);
  }
  // A join that fails publishes nothing.
  script->mode["alpha"] = "reject";
  CHECK(code_of(join_error(room.id, "echo", "Echo 2")) == ec::rejected);
  CHECK(f->events.size() == 4);
}

TEST_CASE_METHOD(events_fixture, "lobby events: bots hear every event but "
                 "their own", "[lobby][events]") {
  start();
  auto alpha = add_provider("alpha", {"echo", "greeter"}, transport::caf);
  auto room = create("room");
  auto echo = join(room.id, "echo", "Echo");       // run-1
  auto greeter = join(room.id, "greeter", "Greeter"); // run-2
  auto f = subscribe(room.id);
  person(room.id, "alice");
  self->send(lobby_of(room.id), atom::chat_v, std::string{"alice"},
             std::string{"hi there"});
  run();
  // The echo bot answers through the directory (the provider gateway's way).
  self->send(aut, atom::say_v, room.id, echo.session_id,
             std::string{"hi there"}, alpha);
  run();
  // Each bot hears its events in order (the order among bots is free).
  auto heard = bot_events();
  std::stable_sort(heard.begin(), heard.end(),
                   [](const std::string& a, const std::string& b) {
                     return a.substr(0, a.find(':')) < b.substr(0, b.find(':'));
                   });
  CHECK(heard == strings{
    "run-1: member_joined Greeter", "run-1: member_joined alice",
    "run-1: chat alice hi there",
    "run-2: member_joined alice", "run-2: chat alice hi there",
    "run-2: chat Echo hi there",
  });
  for (auto& e : script->events)
    CHECK(e.provider_id == alpha);
  REQUIRE(f->events.size() == 3);
  CHECK(f->events[2].type == lobby_event_type::chat);
  CHECK(f->events[2].member.session_id == echo.session_id);
  CHECK(f->events[2].member.is_bot);
  CHECK(f->events[2].text == "hi there");
  // A bot that left hears nothing more.
  CHECK(ask<bool>(aut, atom::remove_v, room.id, greeter.session_id));
  auto before = script->events.size();
  person(room.id, "bob");
  REQUIRE(script->events.size() == before + 1);
  CHECK(script->events.back().run_id == "run-1");
}

TEST_CASE_METHOD(events_fixture, "lobby events: lines from non-members and "
                 "bad lines are ignored", "[lobby][events]") {
  start();
  auto alpha = add_provider("alpha", {"echo"});
  auto room = create("room");
  auto other = create("other");
  auto echo = join(room.id, "echo", "Echo");
  auto stranger = join(other.id, "echo", "Echo");
  auto f = subscribe(room.id);
  auto say = [&](const std::string& lobby_id, const std::string& session_id,
                 const std::string& text) {
    self->send(aut, atom::say_v, lobby_id, session_id, text, alpha);
    run();
  };
  // Only the provider that runs the bot speaks for it.
  self->send(aut, atom::say_v, room.id, echo.session_id,
             std::string{"impostor"}, std::string{"another-provider"});
  run();
  say(room.id, "not-a-member", "hello");
  say(room.id, stranger.session_id, "hello"); // a member of another lobby
  say("no-such-lobby", echo.session_id, "hello");
  say(room.id, echo.session_id, "");
  say(room.id, echo.session_id, "bell \x07");
  say(room.id, echo.session_id, std::string(max_chat_length + 1, 'x'));
  self->send(lobby_of(room.id), atom::chat_v, std::string{""},
             std::string{"no nick"});
  run();
  CHECK(f->seen == strings{"members"});
  CHECK(script->events.empty());
  // A good line still goes through, newlines included.
  say(room.id, echo.session_id, "two\nlines");
  CHECK(f->seen == strings{"members", "chat"});
}

TEST_CASE_METHOD(events_fixture, "lobby events: dead subscribers are "
                 "forgotten, and many do not hold up joins", "[lobby][events]") {
  start();
  add_provider("alpha", {"echo"});
  auto room = create("room");
  std::vector<std::shared_ptr<feed>> feeds;
  for (int i = 0; i < 200; ++i)
    feeds.push_back(subscribe(room.id));
  CHECK(live_subscribers(room.id) == 200);
  // Half of them die (their connections closed).
  for (size_t i = 0; i < spawned.size(); i += 2)
    self->send_exit(spawned[i], caf::exit_reason::user_shutdown);
  run();
  CHECK(live_subscribers(room.id) == 100);
  auto s = join(room.id, "echo", "Echo");
  CHECK(s.is_bot);
  for (size_t i = 0; i < feeds.size(); ++i) {
    auto expected = i % 2 == 0 ? strings{"members"}
                               : strings{"members", "member_joined"};
    CHECK(feeds[i]->seen == expected);
  }
}

TEST_CASE_METHOD(events_fixture, "lobby events: bots loaded from disk hear "
                 "events once their provider is known", "[lobby][events]") {
  auto pid = add_provider("alpha", {"echo"}, transport::caf);
  auto saved = test::make_lobby("11111111-2222-4333-8444-555555555555", "room");
  saved.sessions.push_back(test::bot_member("s1", "Echo", "echo", pid, "r1"));
  start({saved});
  auto room = lobby_of(saved.id);
  // Two events before the registry answered: both arrive, in order.
  self->send(room, atom::chat_v, std::string{"alice"}, std::string{"one"});
  self->send(room, atom::chat_v, std::string{"alice"}, std::string{"two"});
  run();
  self->send(room, atom::chat_v, std::string{"alice"}, std::string{"three"});
  run();
  CHECK(bot_events() == strings{"r1: chat alice one", "r1: chat alice two",
                                "r1: chat alice three"});
  CHECK(script->events.at(0).provider_id == pid);
}

TEST_CASE_METHOD(events_fixture, "lobby events: bots of HTTP providers get "
                 "none (they cannot receive them)", "[lobby][events]") {
  start();
  add_provider("web", {"echo"});
  auto actor = add_provider("actor", {"greeter"}, transport::caf);
  auto room = create("room");
  join(room.id, "echo", "Echo");
  auto greeter = join(room.id, "greeter", "Greeter");
  person(room.id, "alice");
  run();
  // Only the CAF provider's bot heard alice join; nobody heard of the
  // greeter's own join.
  REQUIRE(script->events.size() == 1);
  CHECK(script->events[0].provider_id == actor);
  CHECK(script->events[0].run_id == greeter.run_id);
}

TEST_CASE_METHOD(events_fixture, "lobby events: bots of HTTP providers loaded "
                 "from disk leave the fan-out once their provider is known",
                 "[lobby][events]") {
  auto web = add_provider("web", {"echo"});
  auto actor = add_provider("actor", {"greeter"}, transport::caf);
  auto saved = test::make_lobby("11111111-2222-4333-8444-666666666666", "room");
  for (int i = 0; i < 3; ++i)
    saved.sessions.push_back(
      test::bot_member("s" + std::to_string(i), "Bot " + std::to_string(i),
                       i < 2 ? "echo" : "greeter", i < 2 ? web : actor,
                       "r" + std::to_string(i)));
  start({saved});
  auto room = lobby_of(saved.id);
  self->send(room, atom::chat_v, std::string{"alice"}, std::string{"one"});
  run();
  self->send(room, atom::chat_v, std::string{"alice"}, std::string{"two"});
  run();
  // Only the CAF provider's bot hears them; the HTTP provider's bots are
  // no longer in the fan-out after the first event.
  CHECK(bot_events() == strings{"r2: chat alice one", "r2: chat alice two"});
  auto ptr = caf::actor_cast<lobby_actor::stateful_pointer<lobby_state>>(room);
  CHECK(ptr->state.bots_by_provider.count(web) == 0);
  CHECK(ptr->state.quiet_bots.at(web).size() == 2);
  CHECK(ptr->state.bots_by_provider.at(actor).size() == 1);
  // A leave takes a quiet bot out as well.
  CHECK(ask<bool>(aut, atom::remove_v, saved.id, std::string{"s0"}));
  CHECK(ptr->state.quiet_bots.at(web).size() == 1);
}

// -- cluster mode: lobbies and members another instance changed ---------------

namespace {

lobby remote_lobby(std::string id, std::string name) {
  return test::make_lobby(std::move(id), std::move(name), 1000);
}

session remote_bot(std::string id, std::string nick, std::string bot,
                   std::string provider_id, std::string run_id) {
  return test::bot_member(std::move(id), std::move(nick), std::move(bot),
                          std::move(provider_id), std::move(run_id), 1000);
}

remote_change text(std::string parent, std::string key, std::string json) {
  return remote_change{std::move(parent), std::move(key),
                       std::make_shared<const std::string>(std::move(json))};
}

remote_change header(const lobby& l) {
  return text({}, l.id, lobby_header_json(l));
}

remote_change member(const lobby& l, const session& s) {
  return text(l.id, s.session_id, session_json(s));
}

remote_change left(const lobby& l, const std::string& session_id) {
  return remote_change{l.id, session_id, nullptr};
}

struct remote_fixture : events_fixture {
  store_actor store = sys.spawn(test::memory_store);
  std::string pid;
  lobby one = remote_lobby("0a000000-0000-4000-8000-000000000001", "one");
  lobby two = remote_lobby("0b000000-0000-4000-8000-000000000002", "two");

  remote_fixture() {
    pid = add_provider("alpha", {"echo", "greeter"});
    start_on(store);
  }

  void remote(std::vector<remote_change> changes, bool resync = false) {
    self->send(aut, atom::remote_v, remote_batch{std::move(changes), resync});
    run();
  }

  const std::vector<std::string>& records() {
    return test::state_of(store).records;
  }

  lobby_directory_state& directory() {
    return caf::actor_cast<
             lobby_directory_actor::stateful_pointer<lobby_directory_state>>(
             aut)
      ->state;
  }

  uint64_t active_runs() {
    return ask<provider>(reg, atom::get_v, pid).active_runs;
  }

  strings listed() {
    strings out;
    auto listing = ask<lobby_listing_ptr>(aut, atom::list_v);
    for (auto& l : listing->lobbies)
      out.push_back(l.name);
    return out;
  }

  strings members_of(const lobby& l) {
    strings out;
    for (auto& s : get(l.id).sessions)
      out.push_back(s.nick + (s.is_bot ? " " + s.run_id : ""));
    return out;
  }
};

} // namespace

TEST_CASE_METHOD(remote_fixture,
                 "lobby: a lobby and a bot member created elsewhere are "
                 "listed, indexed and counted here, and nothing is written",
                 "[lobby][remote]") {
  remote({header(one)});
  CHECK(listed() == strings{"one"});
  CHECK(get(one.id).created_at == 1000);
  CHECK(stats->lobbies == 1);
  // Its name is taken: a creation of it here answers that lobby.
  auto again = ask<lobby_created>(aut, atom::create_v,
                                  lobby_create{"one", false});
  CHECK_FALSE(again.created);
  CHECK(again.value.id == one.id);
  remote({member(one, remote_bot("s1", "Echo", "echo", pid, "run-x"))});
  CHECK(members_of(one) == strings{"Echo run-x"});
  CHECK(stats->members == 1);
  CHECK(directory().by_session.at("s1") == one.id);
  CHECK(directory().by_provider.at(pid).size() == 1);
  CHECK(active_runs() == 1);
  // The same bot and nick joining here is that member: nothing dispatched.
  CHECK(join(one.id, "echo", "Echo").session_id == "s1");
  CHECK(script->joins.empty());
  // The header again (an echo) changes nothing.
  remote({header(one)});
  CHECK(stats->lobbies == 1);
  CHECK(members_of(one) == strings{"Echo run-x"});
  CHECK(records().empty());
}

TEST_CASE_METHOD(remote_fixture,
                 "lobby events: a subscriber hears remote bot members join, "
                 "move, be orphaned and leave, as local ones",
                 "[lobby][events][remote]") {
  remote({header(one)});
  auto f = subscribe(one.id);
  auto alice = person(one.id, "alice");
  auto written = records().size(); // alice's join: people are stored too
  auto s = remote_bot("s1", "Echo", "echo", pid, "run-x");
  remote({member(one, s)});
  s.run_id = "run-y";
  s.moved_at = 2000;
  remote({member(one, s)});
  CHECK(members_of(one) == strings{"alice", "Echo run-y"});
  CHECK(active_runs() == 1);
  // The same member again changes nothing.
  remote({member(one, s)});
  s.orphaned = true;
  remote({member(one, s)});
  CHECK(stats->orphaned == 1);
  CHECK(active_runs() == 0);
  remote({left(one, "s1")});
  CHECK(f->seen == strings{"members", "member_joined", "member_joined",
                           "member_moved", "member_orphaned", "member_left"});
  REQUIRE(f->events.size() == 5);
  CHECK(f->events[1].member.session_id == "s1");
  CHECK(f->events[1].member.run_id == "run-x");
  CHECK(f->events[2].member.run_id == "run-y");
  CHECK(f->events[3].member.orphaned);
  CHECK(f->events[4].member.nick == "Echo");
  CHECK(members_of(one) == strings{"alice"});
  CHECK(stats->members == 1);
  CHECK(stats->orphaned == 0);
  CHECK(directory().by_session.count("s1") == 0);
  CHECK(directory().by_provider.count(pid) == 0);
  // The member is gone here; its run is the remover's to stop.
  CHECK(script->stops.empty());
  CHECK(records().size() == written);
}

TEST_CASE_METHOD(remote_fixture,
                 "lobby: a resync drops the lobbies and members it does not "
                 "name, people too (they are stored like bots)",
                 "[lobby][events][remote]") {
  auto local = create("local");
  auto written = records().size();
  auto s1 = remote_bot("s1", "Echo", "echo", pid, "run-1");
  auto s2 = remote_bot("s2", "Greeter", "greeter", pid, "run-2");
  auto s3 = remote_bot("s3", "Echo", "echo", pid, "run-3");
  remote({header(one), header(two), member(one, s1), member(one, s2),
          member(two, s3)});
  person(one.id, "alice");
  written += 2; // alice's join, and the header: the lobby has had people
  auto f = subscribe(one.id);
  CHECK(stats->lobbies == 3);
  CHECK(stats->members == 4);
  CHECK(active_runs() == 3);
  s1.run_id = "run-4";
  remote({header(one), member(one, s1)}, true);
  CHECK(listed() == strings{"one"});
  CHECK(code_of(ask_error<lobby>(aut, atom::get_v, two.id)) == ec::not_found);
  CHECK(code_of(ask_error<lobby>(aut, atom::get_v, local.id))
        == ec::not_found);
  CHECK(members_of(one) == strings{"Echo run-4"});
  CHECK(f->seen
        == strings{"members", "member_moved", "member_left", "member_left"});
  CHECK(f->events.back().member.nick == "alice");
  CHECK(stats->lobbies == 1);
  CHECK(stats->members == 1);
  CHECK(directory().by_session.count("s2") == 0);
  CHECK(directory().by_session.count("s3") == 0);
  CHECK(active_runs() == 1);
  CHECK(records().size() == written);
  // The name of a dropped lobby is free again.
  CHECK(ask<lobby_created>(aut, atom::create_v, lobby_create{"two", false})
          .created);
}

TEST_CASE_METHOD(remote_fixture,
                 "lobby: remote entries that do not decode, or of unknown "
                 "lobbies, are skipped and the rest applied",
                 "[lobby][remote]") {
  auto s1 = remote_bot("s1", "Echo", "echo", pid, "run-1");
  session person_member;
  person_member.session_id = "s8";
  person_member.nick = "bob";
  remote({text({}, two.id, "{nope"),
          text({}, two.id, lobby_header_json(one)), // another lobby's header
          text({}, two.id, ""),
          member(two, s1), // its lobby is unknown here
          header(one),
          text(one.id, "s9", "[1]"),
          text(one.id, "s9", session_json(s1)), // another member's key
          text(one.id, "s9", "{}"),             // no session_id
          member(one, person_member),           // a person from elsewhere
          member(one, s1)});
  CHECK(listed() == strings{"one"});
  CHECK(members_of(one) == strings{"bob", "Echo run-1"});
  CHECK(stats->lobbies == 1);
  CHECK(stats->members == 2);
  CHECK(records().empty());
}

namespace {

/// Cluster mode's claims as a test double: every name is free (its member
/// may have been ended on another instance); the reservations counted.
struct claims_log {
  int reserves = 0;
};

claims_actor::behavior_type free_claims(claims_actor::pointer,
                                        std::shared_ptr<claims_log> log) {
  return {
    [log](atom::reserve, const std::string&, const std::string&,
          const std::string&, const std::string&) -> std::string {
      ++log->reserves;
      return std::string{};
    },
    [](atom::leave, const std::string&, const std::string&, const std::string&,
       const std::string&) {},
  };
}

} // namespace

TEST_CASE_METHOD(lobby_fixture, "lobby, cluster: a join that comes while the "
                 "same one's member is written asks anew once it is, and does "
                 "not take its answer (a leave elsewhere may have ended it)",
                 "[lobby][cluster]") {
  auto log = std::make_shared<claims_log>();
  auto c = sys.spawn(free_claims, log);
  claims = reserved_claims(c);
  auto store = sys.spawn(test::memory_store);
  start_on(store);
  add_provider("alpha", {"echo"});
  auto room = create("room");
  test::state_of(store).holding = true;
  auto first = self->request(aut, caf::infinite, atom::join_v, room.id,
                             bot_join{"echo", "Echo", ""});
  run(); // reserved and dispatched; its member's write is held
  CHECK(log->reserves == 1);
  CHECK(script->joins.size() == 1);
  auto second = self->request(aut, caf::infinite, atom::join_v, room.id,
                              bot_join{"echo", "Echo", ""});
  run();
  CHECK(log->reserves == 1); // waits for the write
  self->send(store, atom::done_v);
  run();
  std::string id1, id2;
  first.receive([&](session& s) { id1 = s.session_id; },
                [](caf::error& e) { FAIL(to_string(e)); });
  second.receive([&](session& s) { id2 = s.session_id; },
                 [](caf::error& e) { FAIL(to_string(e)); });
  CHECK(log->reserves == 2); // asked anew: the name was free again
  CHECK_FALSE(id1.empty());
  CHECK_FALSE(id2.empty());
  CHECK(id1 != id2);
  self->send_exit(c, caf::exit_reason::user_shutdown);
  self->send_exit(store, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(lobby_fixture, "lobby directory: two lobbies of one name "
                 "(created at once on two instances) are both served after a "
                 "start; the name finds the first", "[lobby][cluster]") {
  lobby a;
  a.id = "a-room";
  a.name = "room";
  a.created_at = 1;
  lobby b = a;
  b.id = "b-room";
  b.created_at = 2;
  start({a, b});
  CHECK(get("a-room").name == "room");
  CHECK(get("b-room").name == "room");
  CHECK(create("room").id == "a-room");
  CHECK(ask<lobby_listing_ptr>(aut, atom::list_v)->lobbies.size() == 2);
}
