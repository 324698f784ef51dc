// The fleet (SPEC §7) as the server runs it, on the deterministic scheduler:
// the real registry, dispatcher and lobby directory wired together (peers
// included), HTTP providers behind a scripted link, CAF providers as
// scripted actors, both stores as the in-memory double so a test reads
// which records were made durable. Failover, late acceptances, drains,
// re-dispatch, orphans, lost runs and reconciliation, with their metrics.
#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "actors/dispatcher.hpp"
#include "model/secret.hpp"
#include "actors/directory.hpp"
#include "actors/registry.hpp"
#include "actors/stats.hpp"
#include "fixture.hpp"
#include "memory_store.hpp"
#include "model_samples.hpp"
#include "model/clock.hpp"
#include "scripted_link.hpp"

using namespace vb;
using namespace std::chrono_literals;

namespace {

using strings = std::vector<std::string>;

/// A CAF provider's actor that accepts joins at once, or holds them
/// unanswered ("hold") until the test delivers.
struct host_log {
  std::string mode = "accept";
  std::vector<caf::typed_response_promise<std::string>> held;
  strings stops;
  int next_run = 0;
};

/// The scripted provider's actor; the test tells it to answer the first
/// held join with a run id (a promise is delivered from within its actor).
using scripted_host_actor
  = bot_host_actor::extend<caf::reacts_to<atom::done, std::string>>;

scripted_host_actor::behavior_type
scripted_host(scripted_host_actor::pointer self,
              std::shared_ptr<host_log> log) {
  return {
    [=](atom::done, const std::string& run_id) {
      REQUIRE_FALSE(log->held.empty());
      auto rp = log->held.front();
      log->held.erase(log->held.begin());
      rp.deliver(run_id);
    },
    [=](atom::join, const dispatch_request&) -> caf::result<std::string> {
      if (log->mode == "hold") {
        auto rp = self->make_response_promise<std::string>();
        log->held.push_back(rp);
        return rp;
      }
      return "caf-run-" + std::to_string(++log->next_run);
    },
    [=](atom::stop, const std::string& run_id) {
      log->stops.push_back(run_id);
      return true;
    },
    [=](atom::event, const std::string&, const lobby_event&) {},
  };
}

/// What a lobby subscriber (a WebSocket) saw.
struct feed {
  std::vector<lobby_event> events;
};

lobby_subscriber_actor::behavior_type recorder(lobby_subscriber_actor::pointer,
                                               std::shared_ptr<feed> f) {
  return {
    [=](atom::subscribe, const lobby&) {},
    [=](atom::event, const lobby_event& ev) { f->events.push_back(ev); },
    [=](atom::event, const lobby_event& ev, leave_reason) {
      f->events.push_back(ev);
    },
    // Never a voice socket here (no hello).
    [=](atom::peers, const voice_table_ptr&) { FAIL("a voice table"); },
    [=](atom::signal, const std::string&, const std::string&) {
      FAIL("a signal");
    },
    [=](atom::hello, const voice_hello&) { FAIL("a hello"); },
    [=](atom::voice, const std::string& text, bool) {
      FAIL("a voice message: " << text);
    },
  };
}

struct fleet_fixture : test::fixture {
  std::shared_ptr<server_stats> stats = std::make_shared<server_stats>();
  std::shared_ptr<test::scripted_link> link
    = std::make_shared<test::scripted_link>();
  /// How each HTTP provider (by name) answers joins: "accept", "refuse"
  /// (connection refused), "503", "404" or "hold" (no answer until the test
  /// releases it).
  std::map<std::string, std::string> mode;
  /// Run ids handed out so far, by provider name.
  std::map<std::string, int> next_run;
  store_actor provider_store = sys.spawn(test::memory_store);
  store_actor lobby_store = sys.spawn(test::memory_store);
  registry_actor reg;
  dispatcher_actor disp;
  lobby_directory_actor dir;
  size_t failover_attempts = 1;
  /// Provider names by id, to read records and events.
  std::map<std::string, std::string> names;
  std::vector<caf::actor> spawned;
  /// The actors of CAF providers, by name.
  std::map<std::string, scripted_host_actor> hosts;

  fleet_fixture() {
    link->script = [this](const test::scripted_link::call& c) {
      return answer(c);
    };
    link->hold = [this](const test::scripted_link::call& c) {
      return is_join(c) && join_mode(c) == "hold";
    };
    registry_config rc;
    rc.flush_interval = 3600s;
    reg = sys.spawn(registry, provider_store, std::vector<provider>{}, rc,
                    stats);
    run();
  }

  static std::string name_in(const std::string& url) {
    auto at = url.find("9000/") + 5;
    return url.substr(at, url.find('/', at) - at);
  }

  static bool is_join(const test::scripted_link::call& c) {
    return c.url.size() > 5 && c.url.compare(c.url.size() - 5, 5, "/join") == 0;
  }

  std::string join_mode(const test::scripted_link::call& c) {
    auto i = mode.find(name_in(c.url));
    return i == mode.end() ? "accept" : i->second;
  }

  http_result answer(const test::scripted_link::call& c) {
    if (!is_join(c))
      return test::answer(200); // stops
    auto name = name_in(c.url);
    auto m = join_mode(c);
    if (m == "refuse")
      return test::no_answer("connection refused");
    if (m == "503")
      return test::answer(503, "overloaded");
    if (m == "404")
      return test::answer(404, R"({"detail":"Bot not found"})");
    return test::accepted(name + "-run-" + std::to_string(++next_run[name]));
  }

  /// The dispatcher (with failover_attempts) and the lobby directory, told
  /// to the registry as at start-up.
  void start(std::vector<lobby> initial = {}) {
    dispatcher_config dc;
    dc.server_url = "http://127.0.0.1:8000";
    dc.registry = reg;
    dc.stats = stats;
    dc.failover_attempts = failover_attempts;
    disp = sys.spawn(dispatcher, std::shared_ptr<http_link>{link}, dc);
    lobby_peers lp;
    lp.registry = reg;
    lp.dispatcher = disp;
    lp.store = lobby_store;
    lp.stats = stats;
    dir = sys.spawn(lobby_directory, to_images(std::move(initial)), lp, stats);
    self->send(reg, atom::peers_v, dir, disp);
    run();
  }

  /// The start of many tests: the directory started, the HTTP provider
  /// "alpha" (of `instance`) and the lobby "room". Their ids.
  std::pair<std::string, std::string>
  start_with_alpha(const std::string& instance = {}) {
    start();
    auto alpha = add("alpha", instance);
    return {alpha, create("room")};
  }

  /// The same, and Echo joined in the room at alpha.
  struct echo_scene {
    std::string alpha, room;
    session echo;
  };
  echo_scene echo_at_alpha(const std::string& instance = {}) {
    auto [alpha, room] = start_with_alpha(instance);
    return {alpha, room, join(room, "Echo", alpha)};
  }

  /// Echo, joined at alpha in `room`, being moved: alpha is evicted and
  /// beta, its only other provider, holds the new join unanswered.
  session moving_echo(const std::string& room) {
    auto alpha = add("alpha");
    auto echo = join(room, "Echo", alpha);
    add("beta");
    mode["beta"] = "hold";
    evict(alpha);
    REQUIRE(link->held.size() == 1);
    return echo;
  }

  /// An HTTP provider of the bot "echo".
  std::string add(const std::string& name, const std::string& instance = {},
                  double interval = 0) {
    auto id = ask<std::string>(
      reg, atom::registration_v,
      test::echo_registration(name, instance, interval));
    names[id] = name;
    return id;
  }

  /// A CAF provider of "echo", connected.
  std::string add_caf(const std::string& name, std::shared_ptr<host_log> log) {
    provider_registration r;
    r.name = name;
    r.via = transport::caf;
    r.bots = {bot_info{"echo", ""}};
    auto id = ask<std::string>(reg, atom::registration_v, r);
    names[id] = name;
    auto host = sys.spawn(scripted_host, log);
    spawned.push_back(caf::actor_cast<caf::actor>(host));
    hosts[name] = host;
    REQUIRE(ask<bool>(disp, atom::registration_v, id,
                      caf::actor_cast<bot_host_actor>(host)));
    return id;
  }

  provider get(const std::string& id) {
    return ask<provider>(reg, atom::get_v, id);
  }

  provider_status status(const std::string& id) {
    return get(id).status;
  }

  bool gone(const std::string& id) {
    return code_of(ask_error<provider>(reg, atom::get_v, id)) == ec::not_found;
  }

  provider drain(const std::string& id, double timeout,
                 bool by_operator = true) {
    return ask<provider>(reg, atom::drain_v, id,
                         drain_request{{}, timeout, by_operator});
  }

  /// Evicted by the cleanup rule (unseen for stale_after).
  void evict(const std::string& id) {
    advance(900s);
    REQUIRE(ask<strings>(reg, atom::evict_v, strings{id}, caf::timespan{900s})
            == strings{id});
  }

  std::string create(const std::string& name) {
    return ask<lobby_created>(dir, atom::create_v, lobby_create{name, false})
      .value.id;
  }

  session join(const std::string& lobby_id, const std::string& nick,
               const std::string& preferred = {}) {
    return ask<session>(dir, atom::join_v, lobby_id,
                        bot_join{"echo", nick, preferred});
  }

  caf::error join_error(const std::string& lobby_id, const std::string& nick,
                        const std::string& preferred = {},
                        const std::string& bot = "echo") {
    return ask_error<session>(dir, atom::join_v, lobby_id,
                              bot_join{bot, nick, preferred});
  }

  std::vector<session> members(const std::string& lobby_id) {
    return ask<lobby>(dir, atom::get_v, lobby_id).sessions;
  }

  session member(const std::string& lobby_id, const std::string& session_id) {
    for (auto& s : members(lobby_id))
      if (s.session_id == session_id)
        return s;
    FAIL("no member " << session_id);
    return {};
  }

  std::shared_ptr<feed> subscribe(const std::string& lobby_id) {
    auto f = std::make_shared<feed>();
    auto sub = sys.spawn(recorder, f);
    spawned.push_back(caf::actor_cast<caf::actor>(sub));
    auto room = ask<lobby_actor>(dir, atom::subscribe_v, lobby_id);
    self->send(room, atom::subscribe_v, sub);
    run();
    return f;
  }

  std::string name_of(const std::string& provider_id) {
    auto i = names.find(provider_id);
    return i == names.end() ? provider_id : i->second;
  }

  /// A member as "nick provider run", plus " orphaned" when it is.
  std::string describe(const session& s) {
    return s.nick + " " + name_of(s.provider_id) + " " + s.run_id
           + (s.orphaned ? " orphaned" : "");
  }

  /// The lobby store's records from the `from`-th on, as "leave <session>"
  /// and "join <session> <nick> <provider> <run>[ orphaned]".
  strings records_since(size_t from) {
    strings out;
    auto& records = test::state_of(lobby_store).records;
    for (auto i = from; i < records.size(); ++i) {
      auto j = nlohmann::json::parse(records[i]);
      auto op = j.at("op").get<std::string>();
      if (op == "leave") {
        out.push_back("leave " + j.at("session_id").get<std::string>());
      } else if (op == "join") {
        auto& s = j.at("session");
        session m;
        m.nick = s.at("nick").get<std::string>();
        m.provider_id = s.at("provider_id").get<std::string>();
        m.run_id = s.at("run_id").get<std::string>();
        m.orphaned = s.at("orphaned").get<bool>();
        out.push_back("join " + s.at("session_id").get<std::string>() + " "
                      + describe(m));
      } else {
        out.push_back(op);
      }
    }
    return out;
  }

  size_t record_count() {
    return test::state_of(lobby_store).records.size();
  }

  /// The events a subscriber saw, as "type nick provider run".
  strings seen(const feed& f) {
    strings out;
    for (auto& ev : f.events)
      out.push_back(to_string(ev.type) + (" " + describe(ev.member)));
    return out;
  }

  size_t joins_at(const std::string& name) {
    return link->count("/" + name + "/bots/echo/join");
  }

  size_t stops_at(const std::string& name, const std::string& run_id) {
    return link->count("/" + name + "/bots/runs/" + run_id + "/stop");
  }

  size_t all_stops() {
    return link->count("/stop");
  }

  /// A bot member as a lobby loaded from disk holds it.
  static session saved_member(const std::string& session_id,
                              const std::string& nick,
                              const std::string& provider_id,
                              const std::string& run_id, double joined_at) {
    return test::bot_member(session_id, nick, "echo", provider_id, run_id,
                            joined_at);
  }

  static lobby saved_lobby(std::vector<session> sessions) {
    auto l =
      test::make_lobby("11111111-2222-4333-8444-555555555555", "room", 1);
    l.sessions = std::move(sessions);
    return l;
  }

  ~fleet_fixture() {
    for (auto& a : spawned)
      self->send_exit(a, caf::exit_reason::user_shutdown);
    shut_down(dir, disp, reg);
    shut_down(provider_store, lobby_store);
  }
};

} // namespace

// -- joins: placement and failover --------------------------------------------

TEST_CASE_METHOD(fleet_fixture, "fleet joins: 404 for a bot no provider "
                 "offers, 503 when its providers take no joins now",
                 "[fleet][failover]") {
  auto [alpha, room] = start_with_alpha();
  CHECK(code_of(join_error(room, "Poet", {}, "poet")) == ec::not_found);
  ask<double>(reg, atom::heartbeat_v, alpha, [] {
    heartbeat hb;
    hb.capacity = 0;
    return hb;
  }());
  CHECK(code_of(join_error(room, "Echo")) == ec::unavailable);
  CHECK(members(room).empty());
  CHECK(link->calls.empty());
}

TEST_CASE_METHOD(fleet_fixture, "failover: a join its provider refuses, "
                 "answers 5xx or does not answer in time goes to the next "
                 "candidate; the 200 names the provider that accepted",
                 "[fleet][failover]") {
  auto [alpha, room] = start_with_alpha();
  auto beta = add("beta");
  auto before = record_count();
  session s;
  SECTION("connection refused") {
    mode["alpha"] = "refuse";
    s = join(room, "Echo", alpha);
  }
  SECTION("a 5xx") {
    mode["alpha"] = "503";
    s = join(room, "Echo", alpha);
  }
  SECTION("no answer within dispatch_timeout") {
    mode["alpha"] = "hold";
    auto h = self->request(dir, caf::infinite, atom::join_v, room,
                           bot_join{"echo", "Echo", alpha});
    run();
    CHECK(joins_at("beta") == 0);
    advance(dispatcher_config{}.dispatch_timeout);
    h.receive([&](session& x) { s = std::move(x); },
              [](caf::error& err) { FAIL(to_string(err)); });
  }
  CHECK(s.provider_id == beta);
  CHECK(s.run_id == "beta-run-1");
  CHECK(joins_at("alpha") == 1);
  CHECK(joins_at("beta") == 1);
  CHECK(stats->failovers == 1);
  CHECK(status(alpha) == provider_status::unreachable);
  CHECK(status(beta) == provider_status::online);
  REQUIRE(members(room).size() == 1);
  CHECK(describe(members(room)[0]) == "Echo beta beta-run-1");
  CHECK(records_since(before)
        == strings{"join " + s.session_id + " Echo beta beta-run-1"});
}

TEST_CASE_METHOD(fleet_fixture, "failover: at most failover_attempts further "
                 "providers, then 503 and no member", "[fleet][failover]") {
  failover_attempts = GENERATE(as<size_t>{}, 0, 1, 2);
  start();
  for (auto name : {"a", "b", "c", "d"}) {
    add(name);
    mode[name] = "refuse";
    advance(1s);
  }
  auto room = create("room");
  auto err = join_error(room, "Echo");
  CHECK(code_of(err) == ec::unavailable);
  // The most recently seen first.
  CHECK(joins_at("d") == 1);
  CHECK(link->calls.size() == 1 + failover_attempts);
  CHECK(stats->failovers == failover_attempts);
  CHECK(members(room).empty());
}

TEST_CASE_METHOD(fleet_fixture, "failover: a 4xx is a rejection: no failover "
                 "and no member", "[fleet][failover]") {
  start();
  auto alpha = add("alpha");
  add("beta");
  auto room = create("room");
  mode["alpha"] = "404";
  CHECK(code_of(join_error(room, "Echo", alpha)) == ec::rejected);
  CHECK(joins_at("alpha") == 1);
  CHECK(joins_at("beta") == 0);
  CHECK(stats->failovers == 0);
  CHECK(status(alpha) == provider_status::online);
  CHECK(members(room).empty());
}

TEST_CASE_METHOD(fleet_fixture, "failover: a provider unreachable after a "
                 "failed dispatch is online again at an accepted one",
                 "[fleet][failover][states]") {
  auto [alpha, room] = start_with_alpha();
  mode["alpha"] = "refuse";
  CHECK(code_of(join_error(room, "Echo")) == ec::unavailable);
  CHECK(status(alpha) == provider_status::unreachable);
  // The only provider of the bot: still tried, and back once it accepts.
  mode["alpha"] = "accept";
  auto s = join(room, "Echo");
  CHECK(s.provider_id == alpha);
  CHECK(status(alpha) == provider_status::online);
}

// -- late acceptances ---------------------------------------------------------

TEST_CASE_METHOD(fleet_fixture, "late acceptance: an HTTP provider that "
                 "accepts after the dispatch timeout is told to stop that run "
                 "and gets no member", "[fleet][late]") {
  auto [alpha, room] = start_with_alpha();
  bool with_another = GENERATE(false, true);
  if (with_another)
    add("beta");
  mode["alpha"] = "hold";
  auto h = self->request(dir, caf::infinite, atom::join_v, room,
                         bot_join{"echo", "Echo", alpha});
  run();
  advance(dispatcher_config{}.dispatch_timeout);
  caf::error err;
  session s;
  h.receive([&](session& x) { s = std::move(x); },
            [&](caf::error& e) { err = std::move(e); });
  if (with_another) {
    CHECK(s.provider_id != alpha);
  } else {
    CHECK(code_of(err) == ec::unavailable);
  }
  // The answer the server kept reading for.
  REQUIRE(link->held.size() == 1);
  CHECK(link->held[0].what.timeout == dispatcher_config{}.late_window);
  link->release(0, test::accepted("late-1"));
  run();
  CHECK(stops_at("alpha", "late-1") == 1);
  CHECK(stats->late_acceptances == 1);
  for (auto& m : members(room))
    CHECK(m.provider_id != alpha);
  CHECK(members(room).size() == (with_another ? 1 : 0));
}

TEST_CASE_METHOD(fleet_fixture, "late acceptance: a CAF provider that "
                 "accepts after the dispatch timeout gets a stop",
                 "[fleet][late]") {
  start();
  auto log = std::make_shared<host_log>();
  log->mode = "hold";
  auto alpha = add_caf("alpha", log);
  auto room = create("room");
  CHECK(code_of([&] {
          auto h = self->request(dir, caf::infinite, atom::join_v, room,
                                 bot_join{"echo", "Echo", alpha});
          run();
          advance(dispatcher_config{}.dispatch_timeout);
          caf::error err;
          h.receive([](session&) {}, [&](caf::error& e) { err = e; });
          return err;
        }())
        == ec::unavailable);
  REQUIRE(log->held.size() == 1);
  self->send(hosts["alpha"], atom::done_v, std::string{"caf-late"});
  run();
  CHECK(log->stops == strings{"caf-late"});
  CHECK(stats->late_acceptances == 1);
  CHECK(members(room).empty());
}

TEST_CASE_METHOD(fleet_fixture, "late acceptance: a refusal after the "
                 "dispatch timeout stops nothing", "[fleet][late]") {
  auto [alpha, room] = start_with_alpha();
  mode["alpha"] = "hold";
  auto h = self->request(dir, caf::infinite, atom::join_v, room,
                         bot_join{"echo", "Echo", alpha});
  run();
  advance(dispatcher_config{}.dispatch_timeout);
  h.receive([](session&) { FAIL("joined"); }, [](caf::error&) {});
  link->release(0, test::answer(503, "busy"));
  run();
  CHECK(all_stops() == 0);
  CHECK(stats->late_acceptances == 0);
}

// -- drains -------------------------------------------------------------------

TEST_CASE_METHOD(fleet_fixture, "drain: a draining provider takes no new "
                 "joins, keeps its members, and is deregistered once it runs "
                 "none", "[fleet][drain]") {
  start();
  auto alpha = add("alpha", "a-1");
  auto beta = add("beta");
  auto room = create("room");
  auto echo = join(room, "Echo", alpha);
  REQUIRE(echo.provider_id == alpha);
  CHECK(get(alpha).active_runs == 1);
  auto drained = drain(alpha, 30);
  CHECK(drained.status == provider_status::draining);
  CHECK(drained.active_runs == 1);
  CHECK(stats->drains == 1);
  // A join that prefers it goes elsewhere; its member stays.
  auto other = join(room, "Echo 2", alpha);
  CHECK(other.provider_id == beta);
  CHECK(joins_at("alpha") == 1);
  CHECK(member(room, echo.session_id).provider_id == alpha);
  // A heartbeat keeps it draining.
  ask<double>(reg, atom::heartbeat_v, alpha, heartbeat{});
  CHECK(status(alpha) == provider_status::draining);
  // Its last member leaves: it is stopped, and the provider deregistered.
  CHECK(ask<bool>(dir, atom::remove_v, room, echo.session_id));
  CHECK(stops_at("alpha", echo.run_id) == 1);
  CHECK(gone(alpha));
  CHECK(stats->redispatches == 0);
  // Removed on purpose (an operator's drain): a tombstone of its instance.
  heartbeat hb;
  hb.instance_id = "a-1";
  CHECK(code_of(ask_error<double>(reg, atom::heartbeat_v, alpha, hb))
        == ec::removed);
  CHECK(stats->removed_answers == 1);
}

TEST_CASE_METHOD(fleet_fixture, "drain: at its timeout the members left are "
                 "dispatched again elsewhere and the drained provider is told "
                 "to stop their runs", "[fleet][drain][redispatch]") {
  start();
  auto by_operator = GENERATE(true, false);
  auto alpha = add("alpha", "a-1");
  auto room = create("room");
  auto echo = join(room, "Echo", alpha);
  auto beta = add("beta");
  auto f = subscribe(room);
  auto before = record_count();
  drain(alpha, 30, by_operator);
  advance(29s);
  CHECK(member(room, echo.session_id).provider_id == alpha);
  advance(1s);
  auto moved = member(room, echo.session_id);
  CHECK(moved.nick == "Echo");
  CHECK(moved.provider_id == beta);
  CHECK(moved.run_id == "beta-run-1");
  CHECK_FALSE(moved.orphaned);
  CHECK(moved.moved_at > 0);
  CHECK(records_since(before)
        == strings{"leave " + echo.session_id,
                   "join " + echo.session_id + " Echo beta beta-run-1"});
  CHECK(seen(*f) == strings{"member_moved Echo beta beta-run-1"});
  CHECK(stops_at("alpha", echo.run_id) == 1);
  CHECK(stats->redispatches == 1);
  CHECK(gone(alpha));
  CHECK(get(beta).active_runs == 1);
  heartbeat hb;
  hb.instance_id = "a-1";
  CHECK(code_of(ask_error<double>(reg, atom::heartbeat_v, alpha, hb))
        == (by_operator ? ec::removed : ec::not_found));
}

TEST_CASE_METHOD(fleet_fixture, "drain: at its timeout with no other "
                 "provider, its members are orphaned and it is still told to "
                 "stop their runs", "[fleet][drain][orphans]") {
  auto [alpha, room, echo] = echo_at_alpha("a-1");
  drain(alpha, 30);
  advance(30s);
  CHECK(gone(alpha));
  CHECK(member(room, echo.session_id).orphaned);
  CHECK(stats->orphaned == 1);
  // SPEC §7, drain: "its remaining bot members are re-dispatched and it is
  // told to stop those runs".
  CHECK(stops_at("alpha", echo.run_id) == 1);
}

// -- re-dispatch and orphans --------------------------------------------------

TEST_CASE_METHOD(fleet_fixture, "re-dispatch: the members of an evicted "
                 "provider move with their session and nick to a new provider "
                 "and run, durably, announced as member_moved",
                 "[fleet][redispatch]") {
  auto [alpha, room, echo] = echo_at_alpha();
  auto other = join(room, "Other", alpha);
  auto beta = add("beta");
  auto f = subscribe(room);
  auto before = record_count();
  evict(alpha);
  for (auto& s : {echo, other}) {
    auto m = member(room, s.session_id);
    CHECK(m.nick == s.nick);
    CHECK(m.provider_id == beta);
    CHECK(m.run_id != s.run_id);
    CHECK(m.joined_at == s.joined_at);
    CHECK_FALSE(m.orphaned);
  }
  CHECK(members(room).size() == 2);
  auto records = records_since(before);
  CHECK(records.size() == 4);
  for (auto& s : {echo, other}) {
    auto m = member(room, s.session_id);
    auto leave = std::find(records.begin(), records.end(),
                           "leave " + s.session_id);
    auto join = std::find(records.begin(), records.end(),
                          "join " + s.session_id + " " + describe(m));
    CHECK(leave != records.end());
    CHECK(join != records.end());
    CHECK(leave < join);
  }
  auto events = seen(*f);
  CHECK(events.size() == 2);
  for (auto& ev : f->events) {
    CHECK(ev.type == lobby_event_type::member_moved);
    CHECK(ev.member.provider_id == beta);
  }
  CHECK(stats->redispatches == 2);
  CHECK(get(beta).active_runs == 2);
  // Stopping the old runs is pointless: the provider is gone.
  CHECK(all_stops() == 0);
}

TEST_CASE_METHOD(fleet_fixture, "tokens: a bot's run gets its session token "
                 "in the join body, the member keeps only its hash, and a "
                 "moved member's new run gets a new token that fences the old",
                 "[fleet][redispatch][voice]") {
  auto token_in = [](const std::string& body) {
    return nlohmann::json::parse(body).at("session_token").get<std::string>();
  };
  auto [alpha, room, echo] = echo_at_alpha();
  REQUIRE_FALSE(link->calls.empty());
  auto first = token_in(link->calls.back().body);
  CHECK(first.size() >= 22);
  auto m = member(room, echo.session_id);
  CHECK(token_matches(first, m.token_hash));
  CHECK(echo.token_hash.empty()); // not in the join's answer
  auto beta = add("beta");
  evict(alpha);
  m = member(room, echo.session_id);
  REQUIRE(m.provider_id == beta);
  std::string second;
  for (auto& c : link->calls)
    if (is_join(c) && name_in(c.url) == "beta")
      second = token_in(c.body);
  REQUIRE_FALSE(second.empty());
  CHECK(second != first);
  CHECK(token_matches(second, m.token_hash));
  CHECK_FALSE(token_matches(first, m.token_hash));
}

TEST_CASE_METHOD(fleet_fixture, "re-dispatch: a member that leaves while it "
                 "is being moved is not brought back, and its new run is "
                 "stopped", "[fleet][redispatch]") {
  start();
  auto room = create("room");
  auto echo = moving_echo(room);
  CHECK(ask<bool>(dir, atom::remove_v, room, echo.session_id));
  auto before = record_count();
  link->release(0, test::accepted("beta-new"));
  run();
  CHECK(members(room).empty());
  CHECK(stops_at("beta", "beta-new") == 1);
  CHECK(record_count() == before);
  CHECK(stats->redispatches == 0);
}

TEST_CASE_METHOD(fleet_fixture, "re-dispatch: a leave and a move's write of "
                 "one member never cross in the store", "[fleet][redispatch]") {
  // Crossed, an acknowledged leave came back at the next start (the move's
  // join record last), or the new run outlived its member.
  start();
  auto room = create("room");
  auto echo = moving_echo(room);
  auto before = record_count();
  test::state_of(lobby_store).holding = true;
  auto left = [this](auto& rh) {
    bool ok = false;
    rh.receive([&](bool x) { ok = x; },
               [&](caf::error& err) { FAIL(sys.render(err)); });
    return ok;
  };
  SECTION("the leave is written first: the move is not") {
    auto leave = self->request(dir, caf::infinite, atom::remove_v, room,
                               echo.session_id);
    run();
    REQUIRE(test::state_of(lobby_store).held.size() == 1);
    link->release(0, test::accepted("beta-new"));
    run();
    // The move's write waits for the leave's: the store has one.
    CHECK(test::state_of(lobby_store).held.size() == 1);
    test::release_writes(lobby_store);
    run();
    CHECK(left(leave));
    CHECK(records_since(before) == strings{"leave " + echo.session_id});
    CHECK(stops_at("beta", "beta-new") == 1);
    CHECK(stats->redispatches == 0);
  }
  SECTION("the move is written first: the leave follows and stops the new "
          "run") {
    link->release(0, test::accepted("beta-new"));
    run();
    REQUIRE(test::state_of(lobby_store).held.size() == 1);
    auto leave = self->request(dir, caf::infinite, atom::remove_v, room,
                               echo.session_id);
    run();
    CHECK(test::state_of(lobby_store).held.size() == 1);
    test::release_writes(lobby_store);
    run();
    CHECK(left(leave));
    auto records = records_since(before);
    REQUIRE(records.size() == 3);
    CHECK(records.back() == "leave " + echo.session_id);
    CHECK(stops_at("beta", "beta-new") == 1);
    CHECK(stats->redispatches == 1);
  }
  CHECK(members(room).empty());
}

TEST_CASE_METHOD(fleet_fixture, "states: a CAF provider whose link drops is "
                 "unreachable and its joins 503; connected and registered "
                 "again, it is online", "[fleet][states]") {
  start();
  auto log = std::make_shared<host_log>();
  auto alpha = add_caf("alpha", log);
  auto room = create("room");
  self->send_exit(hosts["alpha"], caf::exit_reason::kill);
  run();
  CHECK(status(alpha) == provider_status::unreachable);
  CHECK(code_of(join_error(room, "Echo")) == ec::unavailable);
  CHECK(members(room).empty());
  // It comes back: a new actor, registered again with its id.
  provider_registration r;
  r.name = "alpha";
  r.via = transport::caf;
  r.provider_id = alpha;
  r.bots = {bot_info{"echo", ""}};
  CHECK(ask<std::string>(reg, atom::registration_v, r) == alpha);
  auto host = sys.spawn(scripted_host, log);
  spawned.push_back(caf::actor_cast<caf::actor>(host));
  REQUIRE(ask<bool>(disp, atom::registration_v, alpha,
                    caf::actor_cast<bot_host_actor>(host)));
  CHECK(status(alpha) == provider_status::online);
  CHECK(join(room, "Echo").provider_id == alpha);
}

TEST_CASE_METHOD(fleet_fixture, "re-dispatch: the members of a provider "
                 "removed by an operator move too", "[fleet][redispatch]") {
  auto [alpha, room, echo] = echo_at_alpha("a-1");
  auto beta = add("beta");
  REQUIRE(ask<bool>(reg, atom::deregister_v, alpha, std::string{}, true));
  CHECK(member(room, echo.session_id).provider_id == beta);
  CHECK(stats->redispatches == 1);
  // It may still run the old one: told to stop it (never a bot twice).
  CHECK(stops_at("alpha", echo.run_id) == 1);
}

TEST_CASE_METHOD(fleet_fixture, "orphans: with no candidate a member stays, "
                 "orphaned, durably, announced as member_orphaned; a provider "
                 "of its bot that registers takes it", "[fleet][orphans]") {
  auto [alpha, room, echo] = echo_at_alpha();
  auto f = subscribe(room);
  auto before = record_count();
  evict(alpha);
  auto m = member(room, echo.session_id);
  CHECK(m.orphaned);
  CHECK(m.nick == "Echo");
  CHECK(records_since(before)
        == strings{"leave " + echo.session_id,
                   "join " + echo.session_id + " " + describe(m)});
  REQUIRE(f->events.size() == 1);
  CHECK(f->events[0].type == lobby_event_type::member_orphaned);
  CHECK(f->events[0].member.orphaned);
  CHECK(stats->orphaned == 1);
  CHECK(stats->redispatches == 0);
  // A provider of the bot registers: the orphan moves there.
  before = record_count();
  auto gamma = add("gamma");
  m = member(room, echo.session_id);
  CHECK_FALSE(m.orphaned);
  CHECK(m.provider_id == gamma);
  CHECK(m.run_id == "gamma-run-1");
  CHECK(records_since(before)
        == strings{"leave " + echo.session_id,
                   "join " + echo.session_id + " Echo gamma gamma-run-1"});
  REQUIRE(f->events.size() == 2);
  CHECK(seen(*f).back() == "member_moved Echo gamma gamma-run-1");
  CHECK(stats->orphaned == 0);
  CHECK(stats->redispatches == 1);
  CHECK(get(gamma).active_runs == 1);
}

TEST_CASE_METHOD(fleet_fixture, "orphans: a member whose only candidate "
                 "failed is orphaned, and taken when that provider is online "
                 "again", "[fleet][orphans]") {
  auto [alpha, room, echo] = echo_at_alpha();
  auto beta = add("beta");
  mode["beta"] = "refuse";
  evict(alpha);
  CHECK(member(room, echo.session_id).orphaned);
  CHECK(status(beta) == provider_status::unreachable);
  CHECK(stats->orphaned == 1);
  // Back online at its heartbeat.
  mode["beta"] = "accept";
  ask<double>(reg, atom::heartbeat_v, beta, heartbeat{});
  auto m = member(room, echo.session_id);
  CHECK_FALSE(m.orphaned);
  CHECK(m.provider_id == beta);
  CHECK(stats->orphaned == 0);
}

// -- lost runs ----------------------------------------------------------------

TEST_CASE_METHOD(fleet_fixture, "lost runs: a heartbeat whose runs lack a run "
                 "given more than two intervals ago dispatches its member "
                 "again; a recent run is kept", "[fleet][lost]") {
  auto alpha = add("alpha", "a-1", 10);
  bool alone = GENERATE(false, true);
  std::string beta;
  if (!alone)
    beta = add("beta");
  auto long_ago = unix_now() - 3600;
  start({saved_lobby({saved_member("s-old", "Old", alpha, "r-old", long_ago),
                      saved_member("s-kept", "Kept", alpha, "r-kept",
                                   long_ago)})});
  auto room = saved_lobby({}).id;
  auto fresh = join(room, "Fresh", alpha);
  REQUIRE(fresh.provider_id == alpha);
  auto before = record_count();
  // A heartbeat without runs says nothing about them.
  ask<double>(reg, atom::heartbeat_v, alpha, heartbeat{});
  CHECK(record_count() == before);
  heartbeat hb;
  hb.instance_id = "a-1";
  hb.has_runs = true;
  hb.runs = {"r-kept"};
  ask<double>(reg, atom::heartbeat_v, alpha, hb);
  auto old = member(room, "s-old");
  CHECK(old.nick == "Old");
  CHECK(old.run_id != "r-old");
  // Another provider first; the one that lost it only when it is alone.
  CHECK(old.provider_id == (alone ? alpha : beta));
  CHECK(member(room, "s-kept").run_id == "r-kept");
  CHECK(member(room, fresh.session_id).run_id == fresh.run_id);
  CHECK(records_since(before)
        == strings{"leave s-old", "join s-old " + describe(old)});
  CHECK(stats->redispatches == 1);
  // Listing every run it has: nothing moves.
  hb.runs = {"r-kept", old.run_id, fresh.run_id};
  ask<double>(reg, atom::heartbeat_v, alpha, hb);
  CHECK(stats->redispatches == 1);
}

// -- reconciliation -----------------------------------------------------------

TEST_CASE_METHOD(fleet_fixture, "reconciliation: a provider registering again "
                 "with its runs keeps the members it lists, dispatches the "
                 "others again, and is told to stop the runs no member holds",
                 "[fleet][reconcile]") {
  auto alpha = add("alpha", "a-1");
  auto beta = add("beta");
  auto long_ago = unix_now() - 3600;
  start({saved_lobby({saved_member("s-1", "Kept", alpha, "r1", long_ago),
                      saved_member("s-2", "Lacking", alpha, "r2", long_ago)})});
  auto room = saved_lobby({}).id;
  auto before = record_count();
  auto again = test::echo_registration("alpha", "a-2");
  again.provider_id = alpha;
  again.has_runs = true;
  again.runs = {"r1", "r9"};
  CHECK(ask<std::string>(reg, atom::registration_v, again) == alpha);
  CHECK(member(room, "s-1").run_id == "r1");
  CHECK(member(room, "s-1").provider_id == alpha);
  auto lacking = member(room, "s-2");
  CHECK(lacking.provider_id == beta);
  CHECK(lacking.nick == "Lacking");
  CHECK(records_since(before)
        == strings{"leave s-2", "join s-2 Lacking beta beta-run-1"});
  CHECK(stops_at("alpha", "r9") == 1);
  CHECK(all_stops() == 1);
  CHECK(stats->redispatches == 1);
}

TEST_CASE_METHOD(fleet_fixture, "reconciliation: a registration without runs "
                 "leaves the members as they are", "[fleet][reconcile]") {
  auto alpha = add("alpha", "a-1");
  add("beta");
  auto long_ago = unix_now() - 3600;
  start({saved_lobby({saved_member("s-1", "Echo", alpha, "r1", long_ago)})});
  auto before = record_count();
  auto again = test::echo_registration("alpha", "a-2");
  again.provider_id = alpha;
  CHECK(ask<std::string>(reg, atom::registration_v, again) == alpha);
  CHECK(member(saved_lobby({}).id, "s-1").run_id == "r1");
  CHECK(record_count() == before);
  CHECK(all_stops() == 0);
  CHECK(stats->redispatches == 0);
}
