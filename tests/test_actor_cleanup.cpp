#include <catch2/catch.hpp>

#include <array>

#include "actors/cleanup.hpp"
#include "actors/dispatcher.hpp"
#include "actors/registry.hpp"
#include "actors/journal_store.hpp"
#include "actors/stats.hpp"
#include "fixture.hpp"
#include "model_samples.hpp"
#include "mock_dispatcher.hpp"
#include "scripted_link.hpp"

using namespace vb;
using namespace std::chrono_literals;

namespace {

/// Cleanup every 60 s, stale after 300 s, guard at 70%.
struct cleanup_fixture : test::fixture {
  test::temp_dir dir;
  std::shared_ptr<server_stats> stats = std::make_shared<server_stats>();
  store_handles files;
  registry_actor registry_handle;
  cleanup_actor aut;
  dispatcher_actor disp;
  cleanup_config config{60s, 300s, 0.7};

  /// Without a dispatcher, nothing is probed.
  void start(std::vector<provider> initial = {},
             dispatcher_actor dispatcher = {}) {
    spawn_registry(std::move(initial));
    aut = sys.spawn(cleanup, registry_handle, config, stats, dispatcher);
    run();
  }

  /// With the real dispatcher over a scripted provider link (and the
  /// registry, which it tells about provider health).
  void start_with_link(std::shared_ptr<test::scripted_link> link) {
    spawn_registry({});
    dispatcher_config dc;
    dc.registry = registry_handle;
    disp = sys.spawn(dispatcher, std::shared_ptr<http_link>{std::move(link)},
                     dc);
    aut = sys.spawn(cleanup, registry_handle, config, stats, disp);
    run();
  }

  /// The registry over the journal store of `dir`.
  void spawn_registry(std::vector<provider> initial) {
    auto seed = std::make_shared<journal_store_seed>();
    load_providers(dir.path, *seed);
    files = spawn_journal_store(sys, seed, stats, false);
    registry_config rc;
    rc.flush_interval = 3600s; // keep the flush timer out of the way
    registry_handle = sys.spawn(registry, files.store, std::move(initial), rc,
                                stats);
  }

  std::string add(const std::string& name) {
    return ask<std::string>(registry_handle, atom::registration_v,
                            test::echo_registration(name));
  }

  /// add() of each name, in order: their ids.
  template <size_t N>
  std::array<std::string, N> add_all(const char* const (&names)[N]) {
    std::array<std::string, N> result;
    for (size_t i = 0; i < N; ++i)
      result[i] = add(names[i]);
    return result;
  }

  void beat(const std::string& id) {
    ask<double>(registry_handle, atom::heartbeat_v, id, heartbeat{});
  }

  /// One cleanup period: the sweep fires and runs to completion.
  void period() {
    advance(config.interval);
  }

  /// `n` periods, each followed by a heartbeat of every one of `live`.
  void periods(int n, std::initializer_list<std::string> live = {}) {
    for (int i = 0; i < n; ++i) {
      period();
      for (auto& id : live)
        beat(id);
    }
  }

  std::vector<std::string> ids() {
    std::vector<std::string> result;
    auto catalog = ask<provider_catalog_ptr>(registry_handle, atom::list_v);
    for (auto& p : catalog->providers)
      result.push_back(p.provider_id);
    return result;
  }

  ~cleanup_fixture() {
    shut_down(aut, disp, registry_handle);
    shut_down(files.store, files.writer);
  }
};

provider loaded(std::string id) {
  provider p;
  p.provider_id = std::move(id);
  p.name = "loaded-" + p.provider_id;
  p.base_url = "http://127.0.0.1:9100/" + p.provider_id;
  p.bots = {bot_info{"echo", ""}};
  p.last_seen = 1; // a day, a year, long ago
  return p;
}

} // namespace

TEST_CASE_METHOD(cleanup_fixture, "cleanup: stale providers are evicted, live "
                 "ones kept", "[cleanup]") {
  start();
  auto [live1, live2, dead] = add_all({"live1", "live2", "dead"});
  // Four periods (240 s): nobody is stale yet.
  periods(4, {live1, live2});
  CHECK(ids().size() == 3);
  CHECK(stats->evictions == 0);
  // The fifth sweep (300 s) finds `dead` unseen for 300 s: 1 of 3 is not a
  // mass eviction.
  period();
  CHECK(ids() == std::vector<std::string>{live1, live2});
  CHECK(stats->evictions == 1);
  CHECK(stats->held_sweeps == 0);
  // The eviction is durable.
  journal_store_seed seed;
  CHECK(load_providers(dir.path, seed).size() == 2);
}

TEST_CASE_METHOD(cleanup_fixture, "cleanup: server downtime does not count",
                 "[cleanup]") {
  // Two providers loaded from disk, last seen long before the start.
  start({loaded("a"), loaded("b"), loaded("c"), loaded("d")});
  periods(4);
  CHECK(ids().size() == 4);
  CHECK(stats->evictions == 0);
}

TEST_CASE_METHOD(cleanup_fixture, "cleanup: the guard holds a mass eviction, "
                 "then lifts it after a further stale_after", "[cleanup]") {
  start();
  auto [a, b, c, d] = add_all({"a", "b", "c", "d"});
  // Three of four go silent at once (75% > 70%): a blip, held back.
  periods(5, {a});
  CHECK(ids().size() == 4);
  CHECK(stats->held_sweeps == 1);
  CHECK(stats->evictions == 0);
  // Still held for the next four periods (until 300 s after the first hold).
  periods(4, {a});
  CHECK(ids().size() == 4);
  CHECK(stats->held_sweeps == 5);
  // A further stale_after later they are evicted all the same.
  period();
  CHECK(ids() == std::vector<std::string>{a});
  CHECK(stats->evictions == 3);
  (void) b, (void) c, (void) d;
}

TEST_CASE_METHOD(cleanup_fixture, "cleanup: a held provider that comes back "
                 "is kept", "[cleanup]") {
  start();
  auto [a, b, c] = add_all({"a", "b", "c"});
  periods(5);
  // All three stale: held.
  CHECK(stats->held_sweeps == 1);
  beat(b);
  beat(c);
  periods(5, {b, c});
  // `a` alone is stale now (1 of 3): evicted without the guard, the others
  // came back and stay.
  CHECK(ids() == std::vector<std::string>{b, c});
}

TEST_CASE_METHOD(cleanup_fixture, "cleanup: a single stale provider is evicted "
                 "even when it is the whole fleet", "[cleanup]") {
  start();
  add("only");
  periods(5);
  CHECK(ids().empty());
  CHECK(stats->held_sweeps == 0);
  CHECK(stats->evictions == 1);
}

TEST_CASE("cleanup: decide() applies the fraction rule", "[cleanup]") {
  cleanup_state st;
  st.config = cleanup_config{60s, 300s, 0.5};
  caf::actor_clock::time_point t0{};
  stale_report r;
  r.total = 4;
  r.entries = {stale_entry{"a", 300s, transport::http, ""},
               stale_entry{"b", 300s, transport::http, ""}};
  // 2 of 4 is not more than half: evicted.
  auto d = st.decide(r, t0);
  CHECK(d.evict.size() == 2);
  CHECK_FALSE(d.held);
  r.entries.push_back(stale_entry{"c", 300s, transport::http, ""});
  d = st.decide(r, t0);
  CHECK(d.evict.empty());
  CHECK(d.held);
  CHECK(d.held_count == 3);
  d = st.decide(r, t0 + 299s);
  CHECK(d.evict.empty());
  d = st.decide(r, t0 + 300s);
  CHECK(d.evict.size() == 3);
  CHECK(st.held_since.empty());
}

namespace {

/// Answers probes: alive when the provider's URL ends with "alive". Like
/// every mock here it tells the registry nothing: what the registry learns,
/// the cleanup actor told it.
dispatcher_actor::behavior_type
probe_only_dispatcher(dispatcher_actor::pointer self,
                      std::shared_ptr<std::vector<std::string>> probed) {
  return test::mock_dispatcher_of(
    [=](atom::join, const provider_list&,
        const dispatch_request&) -> caf::result<placed> {
      return make_error(ec::unavailable);
    },
    [=](atom::stop, const provider&, const std::string&) { return true; },
    [=](atom::probe, const provider& p) {
      probed->push_back(p.provider_id);
      auto& url = p.base_url;
      return url.size() >= 5 && url.compare(url.size() - 5, 5, "alive") == 0;
    },
    [=](atom::done, uint64_t, const http_result&) {},
    [=](atom::expire, uint64_t) {},
    [=](atom::event, const std::string&, const std::string&,
        const lobby_event&) {});
}

} // namespace

TEST_CASE_METHOD(cleanup_fixture, "cleanup: an HTTP provider that answers its "
                 "probe is kept, and the dispatcher marks it seen",
                 "[cleanup]") {
  auto link = std::make_shared<test::scripted_link>();
  link->script = [](const test::scripted_link::call& c) {
    return c.url.find("/alive/") != std::string::npos ? test::answer(200)
                                                      : test::no_answer();
  };
  start_with_link(link);
  auto [alive, dead, live] = add_all({"alive", "dead", "live"});
  periods(5, {live});
  // Both silent ones were probed (2 of 3 is below the guard's 70%); the
  // one that answered stays and counts as seen.
  CHECK(link->calls.size() == 2);
  CHECK(link->count("/alive/bots") == 1);
  CHECK(ids() == std::vector<std::string>{alive, live});
  CHECK(stats->evictions == 1);
  // Seen by the probe: not stale again until another stale_after passed.
  periods(4, {live});
  CHECK(link->calls.size() == 2);
  period();
  CHECK(link->calls.size() == 3);
  (void) dead;
}

TEST_CASE_METHOD(cleanup_fixture, "cleanup: the cleanup actor does not mark a "
                 "probed provider seen itself", "[cleanup]") {
  auto probed = std::make_shared<std::vector<std::string>>();
  auto mock = sys.spawn(probe_only_dispatcher, probed);
  start({}, mock);
  auto [alive, live, other] = add_all({"alive", "live", "other-live"});
  periods(5, {live, other});
  // Probed and kept; the mock told the registry nothing, so it is still
  // stale at the next sweep and probed again.
  CHECK(*probed == std::vector<std::string>{alive});
  CHECK(ids() == std::vector<std::string>{alive, live, other});
  period();
  CHECK(*probed == std::vector<std::string>{alive, alive});
  self->send_exit(mock, caf::exit_reason::user_shutdown);
}
