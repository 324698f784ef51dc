#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <memory>

#include "actors/dispatcher.hpp"
#include "actors/gateway.hpp"
#include "actors/directory.hpp"
#include "actors/registry.hpp"
#include "actors/journal_store.hpp"
#include "actors/stats.hpp"
#include "fixture.hpp"
#include "wire_pins.hpp"

using namespace vb;
using namespace std::chrono_literals;

namespace {

/// What the fake CAF provider does and saw.
struct host_script {
  std::string mode = "accept"; // "accept", "reject" or "hang"
  std::vector<dispatch_request> joins;
  std::vector<std::string> stops;
  std::vector<std::pair<std::string, lobby_event>> events;
  int next_run = 0;
};

/// The fake provider's actor; tests also make it speak for its bots.
using fake_host_actor = bot_host_actor::extend<
  caf::reacts_to<atom::say, provider_gateway_actor, std::string, std::string,
                 std::string>>;

/// A CAF provider's actor as the gateway and the dispatcher see it.
fake_host_actor::behavior_type fake_host(fake_host_actor::pointer self,
                                         std::shared_ptr<host_script> script) {
  return {
    [=](atom::say, provider_gateway_actor gw, const std::string& lobby_id,
        const std::string& session_id, const std::string& text) {
      self->send(gw, atom::say_v, lobby_id, session_id, text);
    },
    [=](atom::join, const dispatch_request& req) -> caf::result<std::string> {
      script->joins.push_back(req);
      if (script->mode == "reject")
        return make_error(ec::not_found, "no such bot here");
      if (script->mode == "hang")
        return self->make_response_promise<std::string>();
      return "run-" + std::to_string(++script->next_run);
    },
    [=](atom::stop, const std::string& run_id) {
      script->stops.push_back(run_id);
      return true;
    },
    [=](atom::event, const std::string& run_id, const lobby_event& ev) {
      script->events.emplace_back(run_id, ev);
    },
  };
}

struct gateway_fixture : test::fixture {
  test::temp_dir dir;
  std::shared_ptr<server_stats> stats = std::make_shared<server_stats>();
  std::shared_ptr<host_script> script = std::make_shared<host_script>();
  store_handles provider_files;
  store_handles lobby_files;
  registry_actor reg;
  dispatcher_actor disp;
  lobby_directory_actor lobbies;
  provider_gateway_actor aut;
  fake_host_actor fake;
  bot_host_actor host;

  explicit gateway_fixture(std::vector<std::string> keys = {}) {
    auto pseed = std::make_shared<journal_store_seed>();
    load_providers(dir.path, *pseed);
    provider_files = spawn_journal_store(sys, pseed, stats, false);
    auto lseed = std::make_shared<journal_store_seed>();
    load_lobbies(dir.path, *lseed);
    lobby_files = spawn_journal_store(sys, lseed, stats, false);
    registry_config rc;
    rc.flush_interval = 3600s;
    rc.provider_keys = std::move(keys);
    reg = sys.spawn(registry, provider_files.store, std::vector<provider>{}, rc,
                    stats);
    dispatcher_config dc;
    dc.registry = reg;
    disp = sys.spawn(dispatcher, std::shared_ptr<http_link>{}, dc);
    lobby_peers lp;
    lp.registry = reg;
    lp.dispatcher = disp;
    lp.store = lobby_files.store;
    lp.stats = stats;
    lobbies = sys.spawn(lobby_directory, std::vector<lobby_image>{}, lp,
                        stats);
    self->send(reg, atom::peers_v, lobbies, disp);
    aut = sys.spawn(provider_gateway, gateway_peers{reg, disp, lobbies});
    fake = sys.spawn(fake_host, script);
    host = caf::actor_cast<bot_host_actor>(fake);
    run();
  }

  provider_registration caf_registration(const std::string& id = {},
                                         const std::string& key = {},
                                         const std::string& instance = {}) {
    provider_registration r;
    r.name = "caf-host";
    r.provider_id = id;
    r.provider_key = key;
    r.bots = {bot_info{"echo", ""}, bot_info{"greeter", ""}};
    r.instance_id = instance;
    return r;
  }

  registration_result enroll(std::vector<bot_run> runs = {},
                             const std::string& id = {},
                             const std::string& instance = {}) {
    return ask<registration_result>(aut, atom::registration_v,
                                    protocol_version,
                                    caf_registration(id, {}, instance), host,
                                    runs);
  }

  /// What voicebot-provider's heartbeats say.
  static heartbeat report(const std::string& instance, double load,
                          int64_t capacity, std::vector<std::string> runs) {
    heartbeat hb;
    hb.instance_id = instance;
    hb.load = load;
    hb.capacity = capacity;
    hb.has_runs = true;
    hb.runs = std::move(runs);
    return hb;
  }

  provider get_provider(const std::string& id) {
    return ask<provider>(reg, atom::get_v, id);
  }

  std::string new_lobby(const std::string& name) {
    return ask<lobby_created>(lobbies, atom::create_v, lobby_create{name, false})
      .value.id;
  }

  session join(const std::string& lobby_id, const std::string& bot,
               const std::string& nick) {
    return ask<session>(lobbies, atom::join_v, lobby_id,
                        bot_join{bot, nick, ""});
  }

  ~gateway_fixture() {
    shut_down(aut, host, lobbies, disp, reg);
    shut_down(provider_files.store, provider_files.writer, lobby_files.store,
              lobby_files.writer);
  }
};

struct keyed_gateway_fixture : gateway_fixture {
  keyed_gateway_fixture() : gateway_fixture({"right-key"}) {
  }
};

} // namespace

TEST_CASE_METHOD(gateway_fixture, "gateway: a CAF provider registers, is "
                 "online and gets joins as messages", "[gateway]") {
  auto res = enroll();
  REQUIRE_FALSE(res.provider_id.empty());
  CHECK(res.unknown_runs.empty());
  auto p = get_provider(res.provider_id);
  CHECK(p.via == transport::caf);
  CHECK(p.status == provider_status::online);
  CHECK(p.base_url.empty());
  auto lobby_id = new_lobby("room");
  auto s = join(lobby_id, "echo", "Echo");
  CHECK(s.run_id == "run-1");
  CHECK(s.provider_id == res.provider_id);
  REQUIRE(script->joins.size() == 1);
  CHECK(script->joins[0].lobby_id == lobby_id);
  CHECK(script->joins[0].nick == "Echo");
  // Registering again with its id keeps the id.
  CHECK(enroll({}, res.provider_id).provider_id == res.provider_id);
  // A lobby event for a run reaches the provider's actor.
  lobby_event ev{lobby_event_type::chat, lobby_id, session{}, "hello", 0};
  self->send(disp, atom::event_v, res.provider_id, s.run_id, ev);
  run();
  REQUIRE(script->events.size() == 1);
  CHECK(script->events[0].first == s.run_id);
  CHECK(script->events[0].second.text == "hello");
}

TEST_CASE_METHOD(gateway_fixture, "gateway: when the provider's actor is "
                 "gone it is unreachable and joins are unavailable",
                 "[gateway]") {
  auto id = enroll().provider_id;
  auto lobby_id = new_lobby("room");
  self->send_exit(host, caf::exit_reason::kill);
  run();
  CHECK(get_provider(id).status == provider_status::unreachable);
  auto err = ask_error<session>(lobbies, atom::join_v, lobby_id,
                                bot_join{"echo", "Echo", ""});
  CHECK(code_of(err) == ec::unavailable);
  CHECK(ask<lobby>(lobbies, atom::get_v, lobby_id).sessions.empty());
  // Still registered: only the cleanup rule evicts it.
  CHECK(get_provider(id).provider_id == id);
}

TEST_CASE_METHOD(gateway_fixture, "gateway: a provider that does not answer "
                 "in time is unavailable, one that refuses is rejected",
                 "[gateway]") {
  enroll();
  auto lobby_id = new_lobby("room");
  script->mode = "hang";
  auto rh = self->request(lobbies, caf::infinite, atom::join_v, lobby_id,
                          bot_join{"echo", "Slow", ""});
  run();
  // Past the dispatcher's dispatch_timeout (then 503: no other provider).
  advance(dispatcher_config{}.dispatch_timeout + 1s);
  caf::error err;
  rh.receive([](session&) { FAIL("a join without an answer succeeded"); },
             [&](caf::error& e) { err = e; });
  CHECK(code_of(err) == ec::unavailable);
  script->mode = "reject";
  err = ask_error<session>(lobbies, atom::join_v, lobby_id,
                           bot_join{"echo", "Refused", ""});
  CHECK(code_of(err) == ec::rejected);
  CHECK(ask<lobby>(lobbies, atom::get_v, lobby_id).sessions.empty());
}

TEST_CASE_METHOD(gateway_fixture, "gateway: registering again keeps the "
                 "members whose runs it lists, dispatches the others again and "
                 "names the runs no lobby knows", "[gateway]") {
  auto id = enroll().provider_id;
  auto room = new_lobby("room");
  auto hall = new_lobby("hall");
  auto a = join(room, "echo", "A");    // run-1: the provider keeps it
  auto b = join(room, "greeter", "B"); // run-2: the provider lost it
  auto c = join(hall, "echo", "C");    // run-3: the provider lost it
  auto res = enroll({bot_run{a.run_id, "echo", room, a.session_id, "A"},
                     bot_run{"run-x", "echo", room, "s-x", "X"}},
                    id);
  run();
  CHECK(res.provider_id == id);
  CHECK(res.unknown_runs == std::vector<std::string>{"run-x"});
  // SPEC §7, reconciliation: the lost members are dispatched again (here to
  // the same provider, the only candidate) and keep their session and nick.
  std::map<std::string, session> now;
  for (auto& l : {room, hall})
    for (auto& m : ask<lobby>(lobbies, atom::get_v, l).sessions)
      now[m.session_id] = m;
  REQUIRE(now.size() == 3);
  CHECK(now[a.session_id].run_id == a.run_id);
  for (auto* lost : {&b, &c}) {
    INFO(lost->nick);
    REQUIRE(now.count(lost->session_id) == 1);
    auto& m = now[lost->session_id];
    CHECK(m.nick == lost->nick);
    CHECK(m.provider_id == id);
    CHECK(m.run_id != lost->run_id);
    CHECK_FALSE(m.orphaned);
  }
  CHECK(script->joins.size() == 5);
  // Durable: the journal holds the members with their new runs.
  journal_store_seed seed;
  std::map<std::string, std::string> on_disk;
  for (auto& img : load_lobbies(dir.path, seed))
    for (auto& m : to_lobby(img).sessions)
      on_disk[m.session_id] = m.run_id;
  CHECK(on_disk.size() == 3);
  for (auto& [sid, m] : now)
    CHECK(on_disk[sid] == m.run_id);
  // The lost members were not stopped at the provider (it has no such runs).
  CHECK(script->stops.empty());
}

TEST_CASE_METHOD(keyed_gateway_fixture, "gateway: a wrong or missing key "
                 "changes nothing", "[gateway]") {
  auto err = ask_error<registration_result>(
    aut, atom::registration_v, protocol_version,
    caf_registration({}, "wrong"), host, std::vector<bot_run>{});
  CHECK(code_of(err) == ec::key_invalid);
  err = ask_error<registration_result>(aut, atom::registration_v,
                                       protocol_version, caf_registration(),
                                       host, std::vector<bot_run>{});
  CHECK(code_of(err) == ec::key_missing);
  CHECK(ask<provider_catalog_ptr>(reg, atom::list_v)->providers.empty());
  auto ok = ask<registration_result>(aut, atom::registration_v,
                                     protocol_version,
                                     caf_registration({}, "right-key"), host,
                                     std::vector<bot_run>{});
  CHECK_FALSE(ok.provider_id.empty());
  err = ask_error<bool>(aut, atom::deregister_v, ok.provider_id,
                        std::string{"wrong"});
  CHECK(code_of(err) == ec::key_invalid);
  CHECK(get_provider(ok.provider_id).provider_id == ok.provider_id);
  CHECK(ask<bool>(aut, atom::deregister_v, ok.provider_id,
                  std::string{"right-key"}));
  CHECK(ask<provider_catalog_ptr>(reg, atom::list_v)->providers.empty());
}

TEST_CASE_METHOD(gateway_fixture, "gateway: hello answers the server's "
                 "protocol version and refuses another, naming both",
                 "[gateway]") {
  CHECK(ask<uint32_t>(aut, atom::hello_v, protocol_version)
        == protocol_version);
  auto err = ask_error<uint32_t>(aut, atom::hello_v, protocol_version + 1);
  CHECK(code_of(err) == ec::protocol_mismatch);
  auto text = sys.render(err);
  CHECK_THAT(text, Catch::Contains("protocol version "
                                   + std::to_string(protocol_version + 1)
                                   + ", this server speaks version "
                                   + std::to_string(protocol_version)));
}

TEST_CASE_METHOD(gateway_fixture, "gateway: a registration with another "
                 "protocol version is refused and changes nothing",
                 "[gateway]") {
  // A provider of this version, with a member in a lobby.
  auto id = enroll().provider_id;
  auto lobby_id = new_lobby("room");
  auto member = join(lobby_id, "echo", "Echo");
  // The same provider again, and a new one, both of another version: with
  // no runs, a registration that went through would reconcile the member
  // away, and rename the provider.
  for (auto version : {protocol_version + 1, uint32_t{0}}) {
    INFO("version " << version);
    auto again = caf_registration(id);
    again.name = "renamed";
    auto err = ask_error<registration_result>(aut, atom::registration_v,
                                              version, again, host,
                                              std::vector<bot_run>{});
    CHECK(code_of(err) == ec::protocol_mismatch);
    CHECK_THAT(sys.render(err),
               Catch::Contains("protocol version " + std::to_string(version)
                               + ", this server speaks version "
                               + std::to_string(protocol_version)));
    auto fresh = caf_registration();
    fresh.name = "newcomer";
    err = ask_error<registration_result>(aut, atom::registration_v, version,
                                         fresh, host, std::vector<bot_run>{});
    CHECK(code_of(err) == ec::protocol_mismatch);
  }
  auto catalog = ask<provider_catalog_ptr>(reg, atom::list_v);
  REQUIRE(catalog->providers.size() == 1);
  CHECK(catalog->providers[0].provider_id == id);
  CHECK(catalog->providers[0].name == "caf-host");
  auto members = ask<lobby>(lobbies, atom::get_v, lobby_id).sessions;
  REQUIRE(members.size() == 1);
  CHECK(members[0].session_id == member.session_id);
  CHECK(script->stops.empty());
  // Still reachable through the actor it registered with.
  CHECK(join(lobby_id, "greeter", "Greeter").provider_id == id);
}

TEST_CASE("the wire block keeps its pinned ids with the server's local types "
          "registered after it", "[gateway]") {
  // The server's local blocks come after the wire block, so a local type
  // added, removed or moved never shifts a wire id.
  static_assert(caf::id_block::vb_local::begin
                == caf::id_block::vb_protocol::end);
  static_assert(caf::id_block::vb_actors::begin
                == caf::id_block::vb_local::end);
  static_assert(caf::type_id<provider>::value
                >= caf::id_block::vb_protocol::end);
  static_assert(caf::type_id<lobby_directory_actor>::value
                >= caf::id_block::vb_protocol::end);
  test::test_config cfg; // every block, as the server registers them
  caf::actor_system system{cfg};
  for (auto& p : test::wire_pins()) {
    INFO(p.name);
    CHECK(p.actual_id == p.id);
    CHECK(system.types().portable_name(0, p.rtti) == p.name);
  }
}

TEST_CASE_METHOD(gateway_fixture, "gateway: invalid registrations are "
                 "refused before the registry sees them", "[gateway]") {
  auto bad = caf_registration();
  bad.name = std::string(300, 'x');
  auto err = ask_error<registration_result>(aut, atom::registration_v,
                                            protocol_version, bad, host,
                                            std::vector<bot_run>{});
  CHECK(code_of(err) == ec::invalid);
  bad = caf_registration();
  bad.bots.push_back(bot_info{"bad name!", ""});
  err = ask_error<registration_result>(aut, atom::registration_v,
                                       protocol_version, bad, host,
                                       std::vector<bot_run>{});
  CHECK(code_of(err) == ec::invalid);
  CHECK(ask<provider_catalog_ptr>(reg, atom::list_v)->providers.empty());
}

TEST_CASE_METHOD(gateway_fixture, "gateway: a bot's line counts only from "
                 "the provider that runs it", "[gateway]") {
  enroll();
  auto lobby_id = new_lobby("room");
  auto echo = join(lobby_id, "echo", "Echo");
  auto greeter = join(lobby_id, "greeter", "Greeter");
  script->events.clear();
  // From the provider's own actor: the other bot hears it.
  self->send(fake, atom::say_v, aut, lobby_id, echo.session_id,
             std::string{"hello"});
  run();
  REQUIRE(script->events.size() == 1);
  CHECK(script->events[0].first == greeter.run_id);
  CHECK(script->events[0].second.type == lobby_event_type::chat);
  CHECK(script->events[0].second.text == "hello");
  CHECK(script->events[0].second.member.session_id == echo.session_id);
  // From any other actor (not a registered provider): nothing.
  self->send(aut, atom::say_v, lobby_id, echo.session_id,
             std::string{"impostor"});
  run();
  CHECK(script->events.size() == 1);
  // A second provider cannot speak for the first one's bots.
  auto other_script = std::make_shared<host_script>();
  auto other = sys.spawn(fake_host, other_script);
  run();
  auto reg = caf_registration();
  reg.name = "other";
  ask<registration_result>(aut, atom::registration_v, protocol_version, reg,
                           caf::actor_cast<bot_host_actor>(other),
                           std::vector<bot_run>{});
  self->send(other, atom::say_v, aut, lobby_id, echo.session_id,
             std::string{"impostor"});
  run();
  CHECK(script->events.size() == 1);
  self->send_exit(other, caf::exit_reason::user_shutdown);
  run();
}

// -- protocol version 2: heartbeats, drains, removed ---------------------------

TEST_CASE_METHOD(gateway_fixture, "gateway: a heartbeat out of range is "
                 "refused as invalid before the registry sees it",
                 "[gateway]") {
  auto id = enroll({}, {}, "instance-1").provider_id;
  auto before = get_provider(id);
  std::vector<heartbeat> bad;
  bad.push_back(report("instance-1", 1.5, 1, {}));
  bad.push_back(report("instance-1", std::nan(""), 1, {}));
  bad.push_back(report(std::string(65, 'i'), 0.5, 1, {}));
  bad.push_back(report("bad\x01instance", 0.5, 1, {}));
  bad.push_back(report("instance-1", 0.5, 1, {""}));
  bad.push_back(report("instance-1", 0.5, 1, {std::string(129, 'r')}));
  bad.push_back(report("instance-1", 0.5, 1,
                       std::vector<std::string>(100001, "r")));
  auto bad_bots = report("instance-1", 0.5, 1, {});
  bad_bots.has_bots = true;
  bad_bots.bots = {bot_info{"bad name!", ""}};
  bad.push_back(bad_bots);
  for (size_t i = 0; i < bad.size(); ++i) {
    INFO("heartbeat " << i);
    auto err = ask_error<double>(aut, atom::heartbeat_v, id, bad[i]);
    CHECK(code_of(err) == ec::invalid);
  }
  auto after = get_provider(id);
  CHECK(after.load == before.load);
  CHECK(after.capacity == before.capacity);
  CHECK(after.last_seen == before.last_seen);
  // An invalid id is refused too.
  auto err = ask_error<double>(aut, atom::heartbeat_v, std::string{},
                               report("instance-1", 0.5, 1, {}));
  CHECK(code_of(err) == ec::invalid);
}

TEST_CASE_METHOD(gateway_fixture, "gateway: a heartbeat's load, capacity and "
                 "instance reach the registry; negative values say nothing",
                 "[gateway]") {
  auto id = enroll({}, {}, "instance-1").provider_id;
  auto lobby_id = new_lobby("room");
  auto s = join(lobby_id, "echo", "Echo");
  auto seen = ask<double>(aut, atom::heartbeat_v, id,
                          report("instance-1", 0.25, 3, {s.run_id}));
  CHECK(seen > 0);
  auto p = get_provider(id);
  CHECK(p.load == Approx(0.25));
  CHECK(p.capacity == 3);
  CHECK(p.instance_id == "instance-1");
  // Nothing announced: the last announcement stays.
  heartbeat quiet;
  quiet.load = -0.5;
  quiet.capacity = -7;
  ask<double>(aut, atom::heartbeat_v, id, quiet);
  p = get_provider(id);
  CHECK(p.load == Approx(0.25));
  CHECK(p.capacity == 3);
  // An unknown provider: not_found (register again).
  auto err = ask_error<double>(aut, atom::heartbeat_v,
                               std::string{"no-such-provider"},
                               report("instance-1", 0.25, 3, {}));
  CHECK(code_of(err) == ec::not_found);
}

TEST_CASE_METHOD(gateway_fixture, "gateway: a provider that drains itself is "
                 "draining and keeps its members; its deregistration leaves "
                 "no tombstone", "[gateway]") {
  auto id = enroll({}, {}, "instance-1").provider_id;
  auto lobby_id = new_lobby("room");
  auto member = join(lobby_id, "echo", "Echo");
  CHECK(ask<bool>(aut, atom::drain_v, id, std::string{}, 30.0));
  auto p = get_provider(id);
  CHECK(p.status == provider_status::draining);
  CHECK_FALSE(p.drain_by_operator);
  CHECK(p.drain_deadline > 0);
  auto members = ask<lobby>(lobbies, atom::get_v, lobby_id).sessions;
  REQUIRE(members.size() == 1);
  CHECK(members[0].session_id == member.session_id);
  // A heartbeat keeps it draining.
  ask<double>(aut, atom::heartbeat_v, id,
              report("instance-1", 0.01, 99, {member.run_id}));
  CHECK(get_provider(id).status == provider_status::draining);
  // It leaves on its own (SIGTERM's drain ended): no tombstone, the same
  // instance may register again.
  CHECK(ask<bool>(aut, atom::deregister_v, id, std::string{}));
  CHECK(enroll({}, id, "instance-1").provider_id == id);
}

TEST_CASE_METHOD(gateway_fixture, "gateway: a drain with an invalid id or "
                 "timeout is refused and changes nothing", "[gateway]") {
  auto id = enroll({}, {}, "instance-1").provider_id;
  for (double timeout : {0.0, std::nan(""), 86401.0, HUGE_VAL}) {
    INFO("timeout " << timeout);
    auto err = ask_error<bool>(aut, atom::drain_v, id, std::string{},
                               timeout);
    CHECK(code_of(err) == ec::invalid);
  }
  auto err = ask_error<bool>(aut, atom::drain_v, std::string{},
                             std::string{}, 30.0);
  CHECK(code_of(err) == ec::invalid);
  CHECK(get_provider(id).status == provider_status::online);
  err = ask_error<bool>(aut, atom::drain_v, std::string{"no-such-provider"},
                        std::string{}, 30.0);
  CHECK(code_of(err) == ec::not_found);
}

TEST_CASE_METHOD(keyed_gateway_fixture, "gateway: a drain needs the key when "
                 "keys are configured", "[gateway]") {
  auto ok = ask<registration_result>(aut, atom::registration_v,
                                     protocol_version,
                                     caf_registration({}, "right-key"), host,
                                     std::vector<bot_run>{});
  // A member, so that the drain does not end at once.
  join(new_lobby("room"), "echo", "Echo");
  auto err = ask_error<bool>(aut, atom::drain_v, ok.provider_id,
                             std::string{"wrong"}, -1.0);
  CHECK(code_of(err) == ec::key_invalid);
  CHECK(get_provider(ok.provider_id).status == provider_status::online);
  CHECK(ask<bool>(aut, atom::drain_v, ok.provider_id,
                  std::string{"right-key"}, -1.0));
  CHECK(get_provider(ok.provider_id).status == provider_status::draining);
}

TEST_CASE_METHOD(gateway_fixture, "gateway: after an operator removed a "
                 "provider, its instance's heartbeat and registration answer "
                 "removed; a new instance registers", "[gateway]") {
  auto id = enroll({}, {}, "instance-1").provider_id;
  // DELETE /api/bots/providers/{id} (on purpose).
  CHECK(ask<bool>(reg, atom::deregister_v, id, std::string{}, true));
  auto err = ask_error<double>(aut, atom::heartbeat_v, id,
                               report("instance-1", 0, 100, {}));
  CHECK(code_of(err) == ec::removed);
  auto again = ask_error<registration_result>(
    aut, atom::registration_v, protocol_version,
    caf_registration(id, {}, "instance-1"), host, std::vector<bot_run>{});
  CHECK(code_of(again) == ec::removed);
  CHECK(ask<provider_catalog_ptr>(reg, atom::list_v)->providers.empty());
  // A restarted provider (a new instance) comes back with its id.
  CHECK(enroll({}, id, "instance-2").provider_id == id);
}
