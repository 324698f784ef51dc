// The registry's fleet rules (SPEC §7) on the deterministic scheduler:
// placement, the provider states and their timers, drains, tombstones and
// the registration token bucket. The registry runs alone over the store
// double; what the directory and the dispatcher would tell it (active runs,
// a failed or accepted call) the test sends itself, as they would.
#include <catch2/catch.hpp>

#include <array>

#include "actors/registry.hpp"
#include "actors/stats.hpp"
#include "fixture.hpp"
#include "model_samples.hpp"
#include "memory_store.hpp"
#include "model/clock.hpp"

using namespace vb;
using namespace std::chrono_literals;

namespace {

using strings = std::vector<std::string>;

struct fleet_registry_fixture : test::fixture {
  std::shared_ptr<server_stats> stats = std::make_shared<server_stats>();
  store_actor store = sys.spawn(test::memory_store);
  registry_config config;
  registry_actor aut;

  fleet_registry_fixture() {
    config.flush_interval = 3600s;
  }

  void start(std::vector<provider> initial = {}) {
    aut = sys.spawn(registry, store, std::move(initial), config, stats);
    run();
  }

  /// A registration of "echo" (heartbeat interval first, as add() takes it).
  static provider_registration registration(const std::string& name,
                                            double interval = 0,
                                            const std::string& instance = {}) {
    return test::echo_registration(name, instance, interval);
  }

  std::string add(const std::string& name, double interval = 0,
                  const std::string& instance = {}) {
    return ask<std::string>(aut, atom::registration_v,
                            registration(name, interval, instance));
  }

  /// add() of each name, a second apart: the last one is the most recently
  /// seen. Their ids.
  template <size_t N>
  std::array<std::string, N> add_in_turn(const char* const (&names)[N]) {
    std::array<std::string, N> ids;
    for (size_t i = 0; i < N; ++i) {
      if (i > 0)
        advance(1s);
      ids[i] = add(names[i]);
    }
    return ids;
  }

  provider get(const std::string& id) {
    return ask<provider>(aut, atom::get_v, id);
  }

  provider_status status(const std::string& id) {
    return get(id).status;
  }

  double beat(const std::string& id, heartbeat hb = {}) {
    return ask<double>(aut, atom::heartbeat_v, id, hb);
  }

  static heartbeat with_load(double load) {
    heartbeat hb;
    hb.load = load;
    return hb;
  }

  static heartbeat with_capacity(int64_t capacity) {
    heartbeat hb;
    hb.capacity = capacity;
    return hb;
  }

  static heartbeat from_instance(const std::string& instance) {
    heartbeat hb;
    hb.instance_id = instance;
    return hb;
  }

  /// What the directory tells the registry on each change of its members.
  void runs(const std::string& id, uint64_t count) {
    self->send(aut, atom::runs_v, id, count);
    run();
  }

  placement place(const std::string& bot, const std::string& preferred = {}) {
    return ask<placement>(aut, atom::resolve_v, bot, preferred);
  }

  /// The candidates' names in placement order.
  strings order(const std::string& bot, const std::string& preferred = {}) {
    strings result;
    for (auto& p : place(bot, preferred).candidates)
      result.push_back(p->name);
    return result;
  }

  provider drain(const std::string& id, double timeout = -1,
                 bool by_operator = true) {
    return ask<provider>(aut, atom::drain_v, id,
                         drain_request{{}, timeout, by_operator});
  }

  ~fleet_registry_fixture() {
    shut_down(aut);
    shut_down(store);
  }
};

} // namespace

// -- placement ----------------------------------------------------------------

TEST_CASE_METHOD(fleet_registry_fixture, "placement: the preferred provider "
                 "first, then least load, fewest active runs, most recently "
                 "seen", "[fleet][placement]") {
  start();
  auto [a, b, c, d] = add_in_turn({"a", "b", "c", "d"});
  // Nothing announced: the most recently seen first.
  CHECK(order("echo") == strings{"d", "c", "b", "a"});
  // Least load first; at equal load, fewest active runs.
  beat(d, with_load(0.9));
  beat(c, with_load(0.5));
  beat(b, with_load(0.5));
  beat(a, with_load(0.1));
  runs(b, 2);
  runs(c, 1);
  CHECK(order("echo") == strings{"a", "c", "b", "d"});
  // The preferred provider goes first, whatever its load.
  CHECK(order("echo", d) == strings{"d", "a", "c", "b"});
  CHECK(order("echo", b) == strings{"b", "a", "c", "d"});
  // At equal load and runs, the most recently seen first.
  runs(b, 1);
  advance(1s);
  beat(b, with_load(0.5));
  CHECK(order("echo") == strings{"a", "b", "c", "d"});
  advance(1s);
  beat(c, with_load(0.5));
  CHECK(order("echo") == strings{"a", "c", "b", "d"});
  // A preference for an unknown provider changes nothing.
  CHECK(order("echo", "no-such-provider") == strings{"a", "c", "b", "d"});
}

TEST_CASE_METHOD(fleet_registry_fixture, "placement: draining providers and "
                 "those at capacity 0 are no candidates, not even preferred; "
                 "an unknown bot is not known", "[fleet][placement]") {
  start();
  auto [a, b, c] = add_in_turn({"a", "b", "c"});
  CHECK(order("echo") == strings{"c", "b", "a"});
  // No capacity announced is no limit; capacity 0 is out.
  beat(a, with_capacity(0));
  CHECK(order("echo") == strings{"c", "b"});
  CHECK(order("echo", a) == strings{"c", "b"});
  // Draining is out (a run keeps the drain going).
  runs(b, 1);
  CHECK(drain(b).status == provider_status::draining);
  CHECK(order("echo") == strings{"c"});
  CHECK(order("echo", b) == strings{"c"});
  // Capacity again: a candidate again (and the most recently seen).
  advance(1s);
  beat(a, with_capacity(3));
  CHECK(order("echo") == strings{"a", "c"});
  // Every provider of the bot out: known, no candidate (503, not 404).
  beat(a, with_capacity(0));
  runs(c, 1);
  drain(c);
  auto none = place("echo");
  CHECK(none.known);
  CHECK(none.candidates.empty());
  // A bot no provider offers: not known (404).
  auto unknown = place("poet");
  CHECK_FALSE(unknown.known);
  CHECK(unknown.candidates.empty());
}

TEST_CASE_METHOD(fleet_registry_fixture, "placement: suspect providers only "
                 "when no provider of the bot is online",
                 "[fleet][placement]") {
  start();
  auto a = add("a", 10);
  auto b = add("b", 10);
  advance(19s);
  beat(b);
  advance(1s); // a: 20 s without a heartbeat
  REQUIRE(status(a) == provider_status::suspect);
  REQUIRE(status(b) == provider_status::online);
  CHECK(order("echo") == strings{"b"});
  CHECK(order("echo", a) == strings{"b"});
  advance(19s); // b: 20 s since its heartbeat
  REQUIRE(status(b) == provider_status::suspect);
  // None online: the suspect ones, by the same order.
  CHECK(order("echo") == strings{"b", "a"});
  CHECK(order("echo", a) == strings{"a", "b"});
  beat(a);
  CHECK(order("echo") == strings{"a"});
}

TEST_CASE_METHOD(fleet_registry_fixture, "placement: an unreachable provider "
                 "is tried only when none is online or suspect",
                 "[fleet][placement]") {
  start();
  auto a = add("a");
  advance(1s);
  auto b = add("b");
  self->send(aut, atom::status_v, b, provider_status::unreachable);
  run();
  CHECK(order("echo") == strings{"a"});
  CHECK(order("echo", b) == strings{"a"});
  // The last resort (an HTTP provider of the original protocol sends no
  // heartbeats: an accepted dispatch is how it comes back).
  self->send(aut, atom::status_v, a, provider_status::unreachable);
  run();
  CHECK(order("echo") == strings{"b", "a"});
}

// -- states -------------------------------------------------------------------

TEST_CASE_METHOD(fleet_registry_fixture, "states: a provider that announced "
                 "an interval is suspect after two intervals without a "
                 "heartbeat, online again at its next one", "[fleet][states]") {
  start();
  auto a = add("a", 5);
  auto quiet = add("quiet"); // announced no interval
  advance(9s);
  CHECK(status(a) == provider_status::online);
  beat(a); // at 9 s
  advance(9s);
  CHECK(status(a) == provider_status::online); // the first timer is stale
  advance(1s); // 10 s since the heartbeat
  CHECK(status(a) == provider_status::suspect);
  // Still listed, and back at its next heartbeat.
  CHECK(get(a).provider_id == a);
  beat(a);
  CHECK(status(a) == provider_status::online);
  advance(10s);
  CHECK(status(a) == provider_status::suspect);
  // A provider that announced no interval is never suspect.
  advance(3600s);
  CHECK(status(quiet) == provider_status::online);
}

TEST_CASE_METHOD(fleet_registry_fixture, "states: a registration restarts "
                 "the suspect clock", "[fleet][states]") {
  start();
  auto a = add("a", 5, "i-1");
  advance(8s);
  CHECK(add("a", 5, "i-1") == a); // registered again at 8 s
  advance(2s); // 10 s after the first registration, 2 s after the second
  CHECK(status(a) == provider_status::online);
  advance(8s); // 10 s after the second
  CHECK(status(a) == provider_status::suspect);
}

TEST_CASE_METHOD(fleet_registry_fixture, "states: unreachable is online again "
                 "at a heartbeat, a registration or an accepted dispatch; "
                 "draining stays draining", "[fleet][states]") {
  start();
  auto a = add("a", 0, "i-1");
  auto unreachable = [&] {
    // What the dispatcher sends when a call got no answer.
    self->send(aut, atom::status_v, a, provider_status::unreachable);
    run();
    REQUIRE(status(a) == provider_status::unreachable);
  };
  unreachable();
  beat(a);
  CHECK(status(a) == provider_status::online);
  unreachable();
  add("a", 0, "i-1");
  CHECK(status(a) == provider_status::online);
  unreachable();
  self->send(aut, atom::seen_v, a); // a join accepted
  run();
  CHECK(status(a) == provider_status::online);
  // Draining: nothing moves it back, nor to unreachable.
  runs(a, 1);
  drain(a);
  self->send(aut, atom::status_v, a, provider_status::unreachable);
  run();
  CHECK(status(a) == provider_status::draining);
  beat(a);
  CHECK(status(a) == provider_status::draining);
  self->send(aut, atom::seen_v, a);
  run();
  CHECK(status(a) == provider_status::draining);
  // The same instance registering again is still draining...
  add("a", 0, "i-1");
  CHECK(status(a) == provider_status::draining);
  CHECK(order("echo").empty());
  // ... a new one (a restarted provider) starts afresh.
  add("a", 0, "i-2");
  CHECK(status(a) == provider_status::online);
  CHECK(order("echo") == strings{"a"});
}

TEST_CASE_METHOD(fleet_registry_fixture, "states: a suspect provider online "
                 "again through an accepted dispatch is suspect again after "
                 "two intervals without a heartbeat", "[fleet][states]") {
  start();
  auto a = add("a", 5);
  advance(10s);
  REQUIRE(status(a) == provider_status::suspect);
  self->send(aut, atom::seen_v, a); // a join accepted at 10 s
  run();
  REQUIRE(status(a) == provider_status::online);
  // Two more intervals, and still no heartbeat since its registration.
  advance(10s);
  CHECK(status(a) == provider_status::suspect);
}

// -- drains -------------------------------------------------------------------

TEST_CASE_METHOD(fleet_registry_fixture, "drain: answered with the provider, "
                 "draining, until the timeout or the server's drain_timeout; "
                 "one that runs nothing is deregistered at once",
                 "[fleet][drain]") {
  start();
  auto a = add("a");
  auto b = add("b");
  runs(a, 2);
  runs(b, 1);
  auto before = unix_now();
  auto drained = drain(a, 30);
  CHECK(drained.provider_id == a);
  CHECK(drained.status == provider_status::draining);
  CHECK(drained.active_runs == 2);
  CHECK(drained.drain_deadline >= before + 30);
  CHECK(drained.drain_deadline < before + 40);
  CHECK(drained.drain_by_operator);
  CHECK(stats->drains == 1);
  // No timeout given: the server's drain_timeout (300 s).
  auto by_default = drain(b);
  CHECK(by_default.drain_deadline >= before + 300);
  CHECK(by_default.drain_deadline < before + 310);
  CHECK(stats->drains == 2);
  // Durable: the store got the draining record.
  auto& records = test::state_of(store).records;
  REQUIRE_FALSE(records.empty());
  CHECK(records.back().find("\"draining\"") != std::string::npos);
  // Running nothing: deregistered as soon as it drains.
  auto c = add("c");
  CHECK(drain(c).status == provider_status::draining);
  CHECK(code_of(ask_error<provider>(aut, atom::get_v, c)) == ec::not_found);
  CHECK(code_of(ask_error<provider>(aut, atom::drain_v, c, drain_request{}))
        == ec::not_found);
}

TEST_CASE_METHOD(fleet_registry_fixture, "drain: deregistered once its runs "
                 "reach 0 or at its timeout; a tombstone only when an operator "
                 "asked", "[fleet][drain]") {
  start();
  auto a = add("a", 0, "i-1");
  runs(a, 2);
  // Asked by an operator (the drain route), or by the provider itself.
  auto by_operator = GENERATE(true, false);
  drain(a, 30, by_operator);
  SECTION("its runs reach 0") {
    runs(a, 1);
    CHECK(status(a) == provider_status::draining);
    runs(a, 0);
  }
  SECTION("its timeout passes") {
    advance(29s);
    CHECK(status(a) == provider_status::draining);
    advance(1s);
  }
  CHECK(code_of(ask_error<provider>(aut, atom::get_v, a)) == ec::not_found);
  CHECK(stats->providers == 0);
  auto err = ask_error<double>(aut, atom::heartbeat_v, a, from_instance("i-1"));
  CHECK(code_of(err) == (by_operator ? ec::removed : ec::not_found));
}

TEST_CASE_METHOD(fleet_registry_fixture, "drain: a drain that cannot be "
                 "written is answered storage_failed and changes nothing",
                 "[fleet][drain]") {
  start();
  auto a = add("a");
  runs(a, 1);
  test::state_of(store).failing = true;
  auto err = ask_error<provider>(aut, atom::drain_v, a, drain_request{});
  CHECK(code_of(err) == ec::storage_failed);
  CHECK(status(a) == provider_status::online);
  CHECK(order("echo") == strings{"a"});
  CHECK(stats->drains == 0);
  // Nor does its timer end anything later.
  test::state_of(store).failing = false;
  advance(3600s);
  CHECK(status(a) == provider_status::online);
}

TEST_CASE_METHOD(fleet_registry_fixture, "drain: a drain loaded from disk "
                 "still ends at its deadline", "[fleet][drain]") {
  auto p = test::make_provider("11111111-1111-4111-8111-111111111111", "a",
                               transport::http, {bot_info{"echo", ""}}, 0, 0);
  p.base_url = "http://127.0.0.1:9000/a";
  p.instance_id = "i-1";
  p.status = provider_status::draining;
  p.drain_deadline = unix_now() + 10;
  p.drain_by_operator = true;
  start({p});
  CHECK(status(p.provider_id) == provider_status::draining);
  CHECK(order("echo").empty());
  advance(9s);
  CHECK(status(p.provider_id) == provider_status::draining);
  advance(1s);
  CHECK(code_of(ask_error<provider>(aut, atom::get_v, p.provider_id))
        == ec::not_found);
  CHECK(code_of(ask_error<double>(aut, atom::heartbeat_v, p.provider_id,
                                  from_instance("i-1")))
        == ec::removed);
}

// -- tombstones ---------------------------------------------------------------

TEST_CASE_METHOD(fleet_registry_fixture, "tombstones: after an operator "
                 "removed a provider, its instance's heartbeat and "
                 "registration answer removed and change nothing; a new "
                 "instance registers",
                 "[fleet][tombstones]") {
  start();
  auto a = add("a", 0, "i-1");
  REQUIRE(ask<bool>(aut, atom::deregister_v, a, std::string{}, true));
  auto records = test::state_of(store).records.size();
  auto err = ask_error<double>(aut, atom::heartbeat_v, a, from_instance("i-1"));
  CHECK(code_of(err) == ec::removed);
  auto again = registration("a", 0, "i-1");
  again.provider_id = a;
  err = ask_error<std::string>(aut, atom::registration_v, again);
  CHECK(code_of(err) == ec::removed);
  CHECK(stats->removed_answers == 2);
  CHECK(ask<provider_catalog_ptr>(aut, atom::list_v)->providers.empty());
  CHECK(test::state_of(store).records.size() == records);
  // A heartbeat of another instance: unknown (it registers again).
  err = ask_error<double>(aut, atom::heartbeat_v, a, from_instance("i-2"));
  CHECK(code_of(err) == ec::not_found);
  // A new instance with that id registers as usual...
  auto fresh = registration("a", 0, "i-2");
  fresh.provider_id = a;
  CHECK(ask<std::string>(aut, atom::registration_v, fresh) == a);
  CHECK(status(a) == provider_status::online);
  beat(a, from_instance("i-2"));
  CHECK(stats->removed_answers == 2);
}

TEST_CASE_METHOD(fleet_registry_fixture, "tombstones: none for a provider "
                 "without instance_id, one that left on its own, or one "
                 "evicted: not_found, and it registers again",
                 "[fleet][tombstones]") {
  start();
  std::string a;
  std::string instance = "i-1";
  SECTION("no instance_id, removed by an operator") {
    instance.clear();
    a = add("a");
    REQUIRE(ask<bool>(aut, atom::deregister_v, a, std::string{}, true));
  }
  SECTION("left on its own") {
    a = add("a", 0, instance);
    REQUIRE(ask<bool>(aut, atom::deregister_v, a, std::string{}, false));
  }
  SECTION("evicted") {
    a = add("a", 0, instance);
    advance(900s);
    REQUIRE(ask<std::vector<std::string>>(aut, atom::evict_v, strings{a},
                                          caf::timespan{900s})
            == strings{a});
  }
  auto err = ask_error<double>(aut, atom::heartbeat_v, a,
                               from_instance(instance));
  CHECK(code_of(err) == ec::not_found);
  auto again = registration("a", 0, instance);
  again.provider_id = a;
  CHECK(ask<std::string>(aut, atom::registration_v, again) == a);
  CHECK(stats->removed_answers == 0);
}

TEST_CASE_METHOD(fleet_registry_fixture, "tombstones: kept for stale_after",
                 "[fleet][tombstones]") {
  config.stale_after = 100s;
  start();
  auto a = add("a", 0, "i-1");
  REQUIRE(ask<bool>(aut, atom::deregister_v, a, std::string{}, true));
  advance(99s);
  CHECK(code_of(ask_error<double>(aut, atom::heartbeat_v, a,
                                  from_instance("i-1")))
        == ec::removed);
  advance(1s);
  CHECK(code_of(ask_error<double>(aut, atom::heartbeat_v, a,
                                  from_instance("i-1")))
        == ec::not_found);
  auto again = registration("a", 0, "i-1");
  again.provider_id = a;
  CHECK(ask<std::string>(aut, atom::registration_v, again) == a);
}

// -- the registration token bucket --------------------------------------------

TEST_CASE_METHOD(fleet_registry_fixture, "registrations: a burst of "
                 "max_registrations_per_second, then rate_limited with "
                 "retry_after and no change; heartbeats are never limited",
                 "[fleet][herds]") {
  config.max_registrations_per_second = 4;
  start();
  strings ids;
  for (int i = 0; i < 4; ++i)
    ids.push_back(add("p" + std::to_string(i)));
  auto records = test::state_of(store).records.size();
  auto err = ask_error<std::string>(aut, atom::registration_v,
                                    registration("late"));
  CHECK(code_of(err) == ec::rate_limited);
  REQUIRE(err.context().match_elements<std::string, double>());
  auto retry_after = err.context().get_as<double>(1);
  CHECK(retry_after > 0);
  CHECK(retry_after <= 0.25);
  CHECK(stats->rate_limited == 1);
  // A 429 changes nothing.
  CHECK(ask<provider_catalog_ptr>(aut, atom::list_v)->providers.size() == 4);
  CHECK(test::state_of(store).records.size() == records);
  // The same provider registering again is limited too.
  err = ask_error<std::string>(aut, atom::registration_v, registration("p0"));
  CHECK(code_of(err) == ec::rate_limited);
  CHECK(stats->rate_limited == 2);
  // Heartbeats go through, however many.
  for (int i = 0; i < 100; ++i)
    beat(ids[i % ids.size()]);
  CHECK(stats->rate_limited == 2);
  // The bucket refills at the rate: one more after retry_after.
  advance(std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double>(retry_after)));
  auto late = add("late");
  CHECK_FALSE(late.empty());
  CHECK(code_of(ask_error<std::string>(aut, atom::registration_v,
                                       registration("later")))
        == ec::rate_limited);
  // A full second: a full burst again, not more.
  advance(10s);
  for (int i = 0; i < 4; ++i)
    add("q" + std::to_string(i));
  CHECK(code_of(ask_error<std::string>(aut, atom::registration_v,
                                       registration("q4")))
        == ec::rate_limited);
  CHECK(stats->rate_limited == 4);
}

TEST_CASE_METHOD(fleet_registry_fixture, "registrations: a rate below one per "
                 "second still admits one registration, then one per "
                 "1/rate seconds", "[fleet][herds]") {
  // A positive rate is valid configuration (model/config.cpp); the bucket
  // holds at least one token, else nothing would ever register.
  config.max_registrations_per_second = 0.5;
  start();
  CHECK_FALSE(add("a").empty());
  auto err = ask_error<std::string>(aut, atom::registration_v,
                                    registration("b"));
  CHECK(code_of(err) == ec::rate_limited);
  advance(2s);
  CHECK_FALSE(add("b").empty());
}
