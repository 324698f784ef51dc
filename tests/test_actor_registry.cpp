#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "actors/journal_store.hpp"
#include "actors/registry.hpp"
#include "actors/stats.hpp"
#include "fixture.hpp"
#include "model_samples.hpp"
#include "memory_store.hpp"
#include "model/snapshot_codec.hpp"

using namespace vb;
using namespace std::chrono_literals;

namespace {

provider_registration reg(std::string name, std::string url,
                          std::vector<std::string> bots) {
  provider_registration r;
  r.name = std::move(name);
  r.base_url = std::move(url);
  for (auto& b : bots)
    r.bots.push_back(bot_info{b, "a bot"});
  return r;
}

std::vector<std::string> names(const std::vector<provider>& ps) {
  std::vector<std::string> result;
  for (auto& p : ps)
    result.push_back(p.name);
  return result;
}

std::vector<std::string> names(const provider_list& ps) {
  std::vector<std::string> result;
  for (auto& p : ps)
    result.push_back(p->name);
  return result;
}

struct registry_fixture : test::fixture {
  test::temp_dir dir;
  std::shared_ptr<server_stats> stats = std::make_shared<server_stats>();
  store_handles files;
  registry_actor aut;

  /// The registry over a real journal store in `data_dir` (the test's
  /// directory when empty), as the server runs it.
  void start(std::vector<provider> initial = {}, registry_config cfg = {},
             std::string data_dir = {}) {
    if (data_dir.empty())
      data_dir = dir.path;
    auto seed = std::make_shared<journal_store_seed>();
    auto loaded = load_providers(data_dir, *seed);
    if (initial.empty())
      initial = std::move(loaded);
    files = spawn_journal_store(sys, seed, stats, false);
    aut = sys.spawn(registry, files.store, std::move(initial), std::move(cfg),
                    stats);
    run();
  }

  /// The registry over the store double.
  void start_on(store_actor store) {
    files.store = std::move(store);
    aut = sys.spawn(registry, files.store, std::vector<provider>{},
                    registry_config{}, stats);
    run();
  }

  /// The candidates of a join of `bot` with no preference.
  provider_list resolve(const std::string& bot) {
    return ask<placement>(aut, atom::resolve_v, bot, std::string{}).candidates;
  }

  std::string add(const provider_registration& r) {
    return ask<std::string>(aut, atom::registration_v, r);
  }

  /// What a restarted server would load.
  std::vector<provider> on_disk() {
    journal_store_seed seed;
    return load_providers(dir.path, seed);
  }

  ~registry_fixture() {
    shut_down(aut);
    shut_down(files.store, files.writer);
  }
};

} // namespace

TEST_CASE_METHOD(registry_fixture, "registry: a registration is durable when "
                                   "acknowledged", "[registry]") {
  start();
  auto id = add(reg("alpha", "http://127.0.0.1:9001", {"echo"}));
  CHECK(id.size() == 36);
  CHECK(id[14] == '4');
  auto disk = on_disk();
  REQUIRE(disk.size() == 1);
  CHECK(disk[0].provider_id == id);
  CHECK(disk[0].base_url == "http://127.0.0.1:9001");
  CHECK(stats->providers == 1);
  auto got = ask<provider>(aut, atom::get_v, id);
  CHECK(got.name == "alpha");
  CHECK(got.status == provider_status::online);
}

TEST_CASE_METHOD(registry_fixture, "registry: the same endpoint or a known id "
                                   "gets the same id back, bots replaced",
                 "[registry]") {
  start();
  auto id = add(reg("alpha", "http://127.0.0.1:9001", {"echo", "greeter"}));
  auto again = add(reg("alpha", "http://127.0.0.1:9001", {"echo", "poet"}));
  CHECK(again == id);
  CHECK(resolve("greeter").empty());
  CHECK(names(resolve("poet"))
        == std::vector<std::string>{"alpha"});
  // A known id keeps its id even when the endpoint moved.
  auto moved = reg("alpha", "http://127.0.0.1:9002", {"echo"});
  moved.provider_id = id;
  CHECK(add(moved) == id);
  auto all = ask<provider_catalog_ptr>(aut, atom::list_v)->providers;
  REQUIRE(all.size() == 1);
  CHECK(all[0].base_url == "http://127.0.0.1:9002");
  // A different endpoint without an id is another provider.
  auto other = add(reg("beta", "http://127.0.0.1:9003", {"echo"}));
  CHECK(other != id);
  CHECK(resolve("echo").size() == 2);
  CHECK(on_disk().size() == 2);
}

TEST_CASE_METHOD(registry_fixture, "registry: a provider that remembers its id "
                                   "gets it back after this server lost it",
                 "[registry]") {
  start();
  auto r = reg("alpha", "http://127.0.0.1:9001", {"echo"});
  r.provider_id = "b3c1a4f2-0000-4000-8000-000000000001";
  CHECK(add(r) == r.provider_id);
  CHECK(on_disk().at(0).provider_id == r.provider_id);
}

TEST_CASE_METHOD(registry_fixture, "registry: heartbeats move last_seen and "
                                   "may replace the catalog", "[registry]") {
  start();
  auto err = ask_error<double>(aut, atom::heartbeat_v, std::string{"nope"},
                               heartbeat{});
  CHECK(code_of(err) == ec::not_found);
  auto id = add(reg("alpha", "http://127.0.0.1:9001", {"echo"}));
  auto before = ask<provider>(aut, atom::get_v, id).last_seen;
  auto seen = ask<double>(aut, atom::heartbeat_v, id, heartbeat{});
  CHECK(seen >= before);
  heartbeat hb;
  hb.has_bots = true;
  hb.bots = {bot_info{"poet", ""}};
  ask<double>(aut, atom::heartbeat_v, id, hb);
  CHECK(resolve("echo").empty());
  CHECK(resolve("poet").size() == 1);
  // Heartbeats are not written one by one, but the flush loop writes them.
  CHECK(on_disk().at(0).bots.at(0).name == "echo");
  advance(5s);
  CHECK(on_disk().at(0).bots.at(0).name == "poet");
}

TEST_CASE_METHOD(registry_fixture, "registry: deregister removes durably",
                 "[registry]") {
  start();
  auto id = add(reg("alpha", "http://127.0.0.1:9001", {"echo"}));
  CHECK(ask<bool>(aut, atom::deregister_v, id, std::string{}, true));
  CHECK(on_disk().empty());
  CHECK(stats->providers == 0);
  CHECK(code_of(ask_error<bool>(aut, atom::deregister_v, id, std::string{},
                                true))
        == ec::not_found);
  CHECK(code_of(ask_error<provider>(aut, atom::get_v, id)) == ec::not_found);
}

TEST_CASE_METHOD(registry_fixture, "registry: with keys configured, a missing "
                                   "or wrong key changes nothing",
                 "[registry]") {
  registry_config cfg;
  cfg.provider_keys = {"k1", "k2"};
  start({}, cfg);
  auto r = reg("alpha", "http://127.0.0.1:9001", {"echo"});
  CHECK(code_of(ask_error<std::string>(aut, atom::registration_v, r))
        == ec::key_missing);
  r.provider_key = "wrong";
  CHECK(code_of(ask_error<std::string>(aut, atom::registration_v, r))
        == ec::key_invalid);
  CHECK(ask<provider_catalog_ptr>(aut, atom::list_v)->providers.empty());
  CHECK(on_disk().empty());
  r.provider_key = "k2";
  auto id = add(r);
  CHECK(code_of(ask_error<bool>(aut, atom::deregister_v, id,
                                std::string{"wrong"}, true))
        == ec::key_invalid);
  CHECK(ask<provider_catalog_ptr>(aut, atom::list_v)->providers.size() == 1);
  CHECK(ask<bool>(aut, atom::deregister_v, id, std::string{"k1"}, true));
}

TEST_CASE_METHOD(registry_fixture, "registry: concurrent changes share "
                                   "appends (group commit)", "[registry]") {
  start();
  constexpr int n = 50;
  std::vector<decltype(self->request(aut, caf::infinite, atom::registration_v,
                                     provider_registration{}))>
    pending;
  for (int i = 0; i < n; ++i)
    pending.push_back(self->request(
      aut, caf::infinite, atom::registration_v,
      reg("p" + std::to_string(i), "http://127.0.0.1:" + std::to_string(9000 + i),
          {"echo"})));
  run();
  int acked = 0;
  for (auto& h : pending)
    h.receive([&](std::string&) { ++acked; }, [](caf::error&) {});
  CHECK(acked == n);
  auto& js = stats->journal(providers_file_name);
  CHECK(js.records == n);
  CHECK(js.appends < 10);
  CHECK(js.appends >= 1);
  CHECK(on_disk().size() == n);
}

TEST_CASE_METHOD(registry_fixture, "registry: a registration that cannot be "
                 "written is answered storage_failed and is not visible",
                 "[registry]") {
  auto store = sys.spawn(test::memory_store);
  test::state_of(store).failing = true;
  start_on(store);
  auto r = reg("alpha", "http://127.0.0.1:9001", {"echo"});
  auto err = ask_error<std::string>(aut, atom::registration_v, r);
  CHECK(code_of(err) == ec::storage_failed);
  CHECK(ask<provider_catalog_ptr>(aut, atom::list_v)->providers.empty());
  CHECK(resolve("echo").empty());
  // A retry while the disk is full: the same.
  err = ask_error<std::string>(aut, atom::registration_v, r);
  CHECK(code_of(err) == ec::storage_failed);
  CHECK(ask<provider_catalog_ptr>(aut, atom::list_v)->providers.empty());
  // The disk works again: a normal answer, once, and the id stays.
  test::state_of(store).failing = false;
  auto id = add(r);
  CHECK(add(r) == id);
  CHECK(names(resolve("echo"))
        == std::vector<std::string>{"alpha"});
  CHECK(test::state_of(store).failed_writes == 2);
  self->send_exit(store, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(registry_fixture, "registry: a deregistration or eviction "
                 "that cannot be written leaves the provider", "[registry]") {
  auto store = sys.spawn(test::memory_store);
  start_on(store);
  auto id = add(reg("alpha", "http://127.0.0.1:9001", {"echo"}));
  test::state_of(store).failing = true;
  auto err = ask_error<bool>(aut, atom::deregister_v, id, std::string{},
                             true);
  CHECK(code_of(err) == ec::storage_failed);
  advance(120s);
  err = ask_error<std::vector<std::string>>(
    aut, atom::evict_v, std::vector<std::string>{id}, caf::timespan{60s});
  CHECK(code_of(err) == ec::storage_failed);
  CHECK(ask<provider>(aut, atom::get_v, id).name == "alpha");
  self->send_exit(store, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(registry_fixture, "registry: a journal that cannot be opened "
                 "leaves no store to start", "[registry]") {
  // The data dir is a regular file.
  auto blocked = dir.path + "/not-a-dir";
  std::ofstream{blocked} << "x";
  journal_store_seed seed;
  load_providers(blocked, seed);
  CHECK(seed.journal == nullptr);
}

TEST_CASE_METHOD(registry_fixture, "registry: heartbeats reach the journal "
                 "with the periodic record and on flush", "[registry]") {
  start();
  auto id = add(reg("alpha", "http://127.0.0.1:9001", {"echo"}));
  auto before = on_disk().at(0).last_seen;
  advance(2s);
  auto seen = ask<double>(aut, atom::heartbeat_v, id, heartbeat{});
  CHECK(seen >= before);
  CHECK(ask<uint64_t>(aut, atom::flush_v) >= 2);
  CHECK(on_disk().at(0).last_seen == seen);
}

TEST_CASE_METHOD(registry_fixture, "registry: providers loaded from disk are "
                 "judged from the server's start", "[registry]") {
  // Last seen long before this server started.
  auto old = test::make_provider("11111111-1111-4111-8111-111111111111", "old",
                                 transport::http, {bot_info{"echo", ""}}, 0,
                                 1000);
  old.base_url = "http://127.0.0.1:9001";
  start({old});
  CHECK(ask<stale_report>(aut, atom::stale_v, caf::timespan{900s})
          .entries.empty());
  advance(899s);
  CHECK(ask<stale_report>(aut, atom::stale_v, caf::timespan{900s})
          .entries.empty());
  advance(1s);
  auto report = ask<stale_report>(aut, atom::stale_v, caf::timespan{900s});
  CHECK(report.total == 1);
  REQUIRE(report.entries.size() == 1);
  CHECK(report.entries[0].provider_id == old.provider_id);
}

TEST_CASE_METHOD(registry_fixture, "registry: evict spares providers seen "
                 "since the sweep asked", "[registry]") {
  start();
  auto a = add(reg("a", "http://127.0.0.1:9001", {"echo"}));
  auto b = add(reg("b", "http://127.0.0.1:9002", {"echo"}));
  advance(100s);
  ask<double>(aut, atom::heartbeat_v, b, heartbeat{});
  auto evicted = ask<std::vector<std::string>>(
    aut, atom::evict_v, std::vector<std::string>{a, b}, caf::timespan{60s});
  CHECK(evicted == std::vector<std::string>{a});
  CHECK(names(on_disk()) == std::vector<std::string>{"b"});
}

// -- cluster mode: providers another instance changed -------------------------

namespace {

/// A provider as another instance would have written it.
provider remote_provider(std::string id, std::string name, std::string url,
                         std::vector<std::string> bots) {
  provider p;
  p.provider_id = std::move(id);
  p.name = std::move(name);
  p.base_url = std::move(url);
  for (auto& b : bots)
    p.bots.push_back(bot_info{b, ""});
  p.registered_at = 1000;
  p.last_seen = 1000;
  return p;
}

remote_change put(const provider& p) {
  return remote_change{{}, p.provider_id,
                       std::make_shared<const std::string>(provider_json(p))};
}

remote_change gone(const std::string& id) {
  return remote_change{{}, id, nullptr};
}

struct remote_registry_fixture : registry_fixture {
  store_actor store;

  remote_registry_fixture() {
    store = sys.spawn(test::memory_store);
    start_on(store);
  }

  ~remote_registry_fixture() {
    self->send_exit(store, caf::exit_reason::user_shutdown);
  }

  void remote(std::vector<remote_change> changes, bool resync = false) {
    self->send(aut, atom::remote_v, remote_batch{std::move(changes), resync});
    run();
  }

  std::vector<std::string> listed() {
    return names(ask<provider_catalog_ptr>(aut, atom::list_v)->providers);
  }

  const std::vector<std::string>& written() {
    return test::state_of(store).records;
  }
};

const std::string id_a = "aaaaaaaa-0000-4000-8000-000000000001";
const std::string id_b = "bbbbbbbb-0000-4000-8000-000000000002";
const std::string id_c = "cccccccc-0000-4000-8000-000000000003";

} // namespace

TEST_CASE_METHOD(remote_registry_fixture,
                 "registry: a provider another instance registered is listed "
                 "and placed, and nothing is written",
                 "[registry][remote]") {
  auto before = ask<provider_catalog_ptr>(aut, atom::list_v)->version;
  remote({put(remote_provider(id_a, "alpha", "http://10.0.0.1:9001",
                              {"echo"}))});
  auto got = ask<provider>(aut, atom::get_v, id_a);
  CHECK(got.name == "alpha");
  CHECK(got.base_url == "http://10.0.0.1:9001");
  CHECK(got.registered_at == 1000);
  // Not in its text: this instance's own view.
  CHECK(got.load == -1);
  CHECK(got.capacity == -1);
  CHECK(got.lease_expires_at > 1000);
  CHECK(listed() == std::vector<std::string>{"alpha"});
  CHECK(ask<provider_catalog_ptr>(aut, atom::list_v)->version > before);
  CHECK(names(resolve("echo")) == std::vector<std::string>{"alpha"});
  CHECK(stats->providers == 1);
  // A later flush writes nothing of it either.
  CHECK(ask<uint64_t>(aut, atom::flush_v) == 0);
  CHECK(written().empty());
}

TEST_CASE_METHOD(remote_registry_fixture,
                 "registry: a remote value replaces a known provider in its "
                 "place, reindexed, and counts as a sign of life",
                 "[registry][remote]") {
  auto a = remote_provider(id_a, "alpha", "http://10.0.0.1:9001", {"echo"});
  remote({put(a), put(remote_provider(id_b, "beta", "http://10.0.0.2:9001",
                                      {"echo"}))});
  auto version = ask<provider_catalog_ptr>(aut, atom::list_v)->version;
  advance(100s);
  CHECK(ask<stale_report>(aut, atom::stale_v, caf::timespan{60s}).entries.size()
        == 2);
  a.base_url = "http://10.0.0.1:9002";
  a.bots = {bot_info{"poet", ""}};
  remote({put(a)});
  // Its registration order stays.
  CHECK(listed() == std::vector<std::string>{"alpha", "beta"});
  CHECK(ask<provider>(aut, atom::get_v, id_a).base_url
        == "http://10.0.0.1:9002");
  CHECK(ask<provider_catalog_ptr>(aut, atom::list_v)->version > version);
  CHECK(names(resolve("echo")) == std::vector<std::string>{"beta"});
  CHECK(names(resolve("poet")) == std::vector<std::string>{"alpha"});
  // Someone just wrote it: only beta is unseen for a minute.
  auto report = ask<stale_report>(aut, atom::stale_v, caf::timespan{60s});
  REQUIRE(report.entries.size() == 1);
  CHECK(report.entries[0].provider_id == id_b);
  // A provider registering here finds the endpoint taken by the remote one.
  auto r = reg("alpha", "http://10.0.0.1:9002", {"poet"});
  CHECK(add(r) == id_a);
  CHECK(stats->providers == 2);
}

TEST_CASE_METHOD(remote_registry_fixture,
                 "registry: a provider removed elsewhere is gone here, "
                 "without a write or a tombstone",
                 "[registry][remote]") {
  auto a = remote_provider(id_a, "alpha", "http://10.0.0.1:9001", {"echo"});
  a.instance_id = "i-1";
  remote({put(a)});
  REQUIRE(stats->providers == 1);
  remote({gone(id_a)});
  CHECK(code_of(ask_error<provider>(aut, atom::get_v, id_a)) == ec::not_found);
  CHECK(listed().empty());
  CHECK(resolve("echo").empty());
  CHECK(stats->providers == 0);
  // A removal of what is not here is nothing.
  remote({gone(id_c)});
  CHECK(written().empty());
  // No tombstone here: the same instance registers again.
  auto r = reg("alpha", "http://10.0.0.1:9001", {"echo"});
  r.provider_id = id_a;
  r.instance_id = "i-1";
  CHECK(add(r) == id_a);
}

TEST_CASE_METHOD(remote_registry_fixture,
                 "registry: a resync keeps only the providers it names",
                 "[registry][remote]") {
  auto local = add(reg("local", "http://127.0.0.1:9001", {"echo"}));
  auto records = written().size();
  remote({put(remote_provider(id_a, "alpha", "http://10.0.0.1:9001",
                              {"echo"})),
          put(remote_provider(id_b, "beta", "http://10.0.0.2:9001",
                              {"greeter"}))});
  CHECK(listed() == std::vector<std::string>{"local", "alpha", "beta"});
  auto b = remote_provider(id_b, "beta", "http://10.0.0.2:9001", {"poet"});
  remote({put(b), put(remote_provider(id_c, "gamma", "http://10.0.0.3:9001",
                                      {"echo"}))},
         true);
  CHECK(listed() == std::vector<std::string>{"beta", "gamma"});
  CHECK(code_of(ask_error<provider>(aut, atom::get_v, local))
        == ec::not_found);
  CHECK(names(resolve("echo")) == std::vector<std::string>{"gamma"});
  CHECK(resolve("greeter").empty());
  CHECK(names(resolve("poet")) == std::vector<std::string>{"beta"});
  CHECK(stats->providers == 2);
  CHECK(written().size() == records);
}

TEST_CASE_METHOD(remote_registry_fixture,
                 "registry: a remote entry that does not decode is skipped "
                 "and the rest applied",
                 "[registry][remote]") {
  auto bad = [](std::string id, std::string text) {
    return remote_change{{}, std::move(id),
                         std::make_shared<const std::string>(std::move(text))};
  };
  auto b = remote_provider(id_b, "beta", "http://10.0.0.2:9001", {"echo"});
  remote({bad(id_a, "{not json"),
          bad(id_a, R"({"provider_id":")" + id_a + R"("})"), // no name
          put(b),
          // Two providers in one entry, and one under another key.
          bad(id_c, provider_json(b) + "," + provider_json(b)),
          bad(id_c, provider_json(b)),
          bad(id_c, ""),
          remote_change{"some-lobby", id_c,
                        std::make_shared<const std::string>(provider_json(b))},
          put(remote_provider(id_a, "alpha", "http://10.0.0.1:9001",
                              {"echo"}))});
  CHECK(listed() == std::vector<std::string>{"beta", "alpha"});
  CHECK(code_of(ask_error<provider>(aut, atom::get_v, id_c)) == ec::not_found);
  CHECK(stats->providers == 2);
  CHECK(written().empty());
}
