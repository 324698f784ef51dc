// Joins with an Idempotency-Key (SPEC §7, actors/idempotency): the first
// accepted answer of a key is answered again, a key reused for another
// request is refused, a retry of an error joins again, and keys expire
// durably. The lobby directory is a scripted double; the store is the
// in-memory double (which can fail), or the real journal store on disk for
// a restart.
#include <catch2/catch.hpp>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "actors/idempotency.hpp"
#include "actors/journal_store.hpp"
#include "actors/stats.hpp"
#include "fixture.hpp"
#include "memory_store.hpp"
#include "model_samples.hpp"
#include "model/clock.hpp"
#include "model/idempotency_codec.hpp"

using namespace vb;
using namespace std::chrono_literals;

namespace {

/// What the scripted directory does with a join.
enum class join_mode { accept, fail, hold };

struct scripted_directory_state {
  static inline constexpr const char* name = "scripted-directory";
  join_mode mode = join_mode::accept;
  /// Every join asked: (lobby id, bot, nick).
  std::vector<std::string> joins;
  /// Held joins, answered when the test sends `orphans` (a message the
  /// idempotency actor never sends): a promise is delivered from its actor.
  std::vector<std::pair<caf::typed_response_promise<session>, session>> held;
};

/// A lobby directory that answers joins only (every other message but the
/// test's `orphans` fails the test): a new session per join, numbered.
lobby_directory_actor::behavior_type scripted_directory(
  lobby_directory_actor::stateful_pointer<scripted_directory_state> self) {
  auto never = [](const char* what) {
    FAIL("the idempotency actor sent the directory " << what);
  };
  return {
    [=](atom::create, const lobby_create&) -> caf::result<lobby_created> {
      never("create");
      return make_error(ec::invalid);
    },
    [=](atom::list) -> caf::result<lobby_listing_ptr> {
      never("list");
      return make_error(ec::invalid);
    },
    [=](atom::get, const std::string&) -> caf::result<lobby> {
      never("get");
      return make_error(ec::invalid);
    },
    [=](atom::join, const std::string& lobby_id,
        const bot_join& bj) -> caf::result<session> {
      auto& st = self->state;
      st.joins.push_back(lobby_id + "/" + bj.bot_name + "/" + bj.nick);
      if (st.mode == join_mode::fail)
        return make_error(ec::unavailable, std::string{"provider down"});
      auto n = std::to_string(st.joins.size());
      auto s = test::bot_member(
        "s" + n, bj.nick, bj.bot_name,
        bj.provider_id.empty() ? "p1" : bj.provider_id, "run-" + n, 1000);
      if (st.mode == join_mode::hold) {
        auto rp = self->make_response_promise<session>();
        st.held.emplace_back(rp, s);
        return rp;
      }
      return s;
    },
    [=](atom::add, const std::string&, const std::string&)
      -> caf::result<person_session> {
      never("add");
      return make_error(ec::invalid);
    },
    [=](atom::remove, const std::string&, const std::string&)
      -> caf::result<bool> {
      never("remove");
      return make_error(ec::invalid);
    },
    [=](atom::leave, const leave_request&) -> caf::result<std::string> {
      never("leave");
      return make_error(ec::invalid);
    },
    [=](atom::persist, const member_change&) { never("persist"); },
    [=](atom::remote, const remote_batch&) { never("remote"); },
    [=](atom::seats) { never("seats"); },
    [=](atom::reconcile, const std::string&, const std::vector<bot_run>&,
        double) -> caf::result<std::vector<std::string>> {
      never("reconcile");
      return make_error(ec::invalid);
    },
    [=](atom::redispatch, const provider&, move_reason) { never("redispatch"); },
    [=](atom::lost, const std::string&, const std::vector<std::string>&,
        double) { never("lost"); },
    [=](atom::orphans, const std::vector<std::string>&) {
      // The test's signal: answer the held joins.
      auto held = std::move(self->state.held);
      self->state.held.clear();
      for (auto& [rp, s] : held)
        rp.deliver(s);
    },
    [=](atom::say, const std::string&, const std::string&, const std::string&,
        const std::string&) { never("say"); },
    [=](atom::subscribe, const std::string&) -> caf::result<lobby_actor> {
      never("subscribe");
      return make_error(ec::invalid);
    },
  };
}

scripted_directory_state& state_of(const lobby_directory_actor& h) {
  return caf::actor_cast<
           lobby_directory_actor::stateful_pointer<scripted_directory_state>>(h)
    ->state;
}

/// A join request as the HTTP layer would see it.
struct request {
  std::string bot = "echo";
  join_request body{"lobby-1", "Echo", ""};

  std::string fingerprint() const {
    return join_fingerprint(bot, body);
  }
  bot_join join() const {
    return bot_join{bot, body.nick.empty() ? bot : body.nick,
                    body.provider_id};
  }
};

struct idempotency_fixture : test::fixture {
  std::shared_ptr<server_stats> stats = std::make_shared<server_stats>();
  lobby_directory_actor directory = sys.spawn(scripted_directory);
  store_actor store = sys.spawn(test::memory_store);
  idempotency_config config;
  idempotency_actor aut;

  idempotency_fixture() {
    config.ttl = 3600s;
    config.sweep_interval = 60s;
  }

  ~idempotency_fixture() {
    shut_down(aut, directory, store);
  }

  void start(std::vector<idempotency_entry> initial = {}) {
    aut = sys.spawn(idempotency, directory, store, std::move(initial), config,
                    stats);
    run();
  }

  /// Starts with the directory in `mode`, and sends two joins of the key "k"
  /// (the same request) at once: their response handles, both delivered.
  auto start_two_joins(join_mode mode) {
    start();
    dir().mode = mode;
    request r;
    auto send = [&] {
      return self->request(aut, caf::infinite, atom::join_v, std::string{"k"},
                           r.fingerprint(), r.body.lobby_id, r.join());
    };
    std::array handles{send(), send()};
    run();
    return handles;
  }

  session join(const std::string& key, const request& r = {}) {
    return ask<session>(aut, atom::join_v, key, r.fingerprint(),
                        r.body.lobby_id, r.join());
  }

  caf::error join_error(const std::string& key, const request& r = {}) {
    return ask_error<session>(aut, atom::join_v, key, r.fingerprint(),
                              r.body.lobby_id, r.join());
  }

  scripted_directory_state& dir() {
    return state_of(directory);
  }

  test::memory_store_state& disk() {
    return test::state_of(store);
  }

  idempotency_state& keys() {
    return caf::actor_cast<idempotency_actor::stateful_pointer<idempotency_state>>(
             aut)
      ->state;
  }

  size_t records_with(const std::string& text) {
    size_t n = 0;
    for (auto& r : disk().records)
      if (r.find(text) != std::string::npos)
        ++n;
    return n;
  }
};

bool same(const session& a, const session& b) {
  return a.session_id == b.session_id && a.run_id == b.run_id
         && a.provider_id == b.provider_id && a.nick == b.nick
         && a.bot_name == b.bot_name;
}

} // namespace

TEST_CASE_METHOD(idempotency_fixture,
                 "a retried join with the same key gets the first answer, and "
                 "the directory is asked once",
                 "[idempotency]") {
  start();
  auto first = join("k1");
  CHECK(first.session_id == "s1");
  CHECK(records_with(R"("op":"put")") == 1);
  auto again = join("k1");
  CHECK(same(first, again));
  CHECK(dir().joins.size() == 1);
  CHECK(stats->idempotent_replays == 1);
  // Another key is another join.
  auto other = join("k2");
  CHECK(other.session_id == "s2");
  CHECK(dir().joins.size() == 2);
}

TEST_CASE_METHOD(idempotency_fixture,
                 "the same key with another bot, lobby, nick or provider "
                 "answers idempotency_key_reused and joins nothing",
                 "[idempotency]") {
  start();
  join("k1");
  request bot;
  bot.bot = "greeter";
  request lobby;
  lobby.body.lobby_id = "lobby-2";
  request nick;
  nick.body.nick = "Other";
  request pinned;
  pinned.body.provider_id = "p2";
  request no_nick;
  no_nick.body.nick = "";
  for (auto& r : {bot, lobby, nick, pinned, no_nick}) {
    auto err = join_error("k1", r);
    CHECK(code_of(err) == ec::idempotency_key_reused);
  }
  CHECK(dir().joins.size() == 1);
  CHECK(records_with(R"("op":"put")") == 1);
  // The first request still gets its answer.
  CHECK(join("k1").session_id == "s1");
}

TEST_CASE_METHOD(idempotency_fixture,
                 "two joins with the same key at the same time: the second "
                 "waits for the first's answer; another request is refused",
                 "[idempotency]") {
  auto joins = start_two_joins(join_mode::hold);
  REQUIRE(dir().held.size() == 1);
  // Meanwhile the key with another body is refused at once.
  request other;
  other.body.nick = "Other";
  CHECK(code_of(join_error("k", other)) == ec::idempotency_key_reused);
  auto s = dir().held.front().second;
  self->send(directory, atom::orphans_v, std::vector<std::string>{});
  run();
  std::vector<session> got;
  for (auto& h : joins)
    h.receive([&](session& x) { got.push_back(x); },
              [&](caf::error& err) { FAIL(sys.render(err)); });
  REQUIRE(got.size() == 2);
  CHECK(same(got[0], s));
  CHECK(same(got[1], s));
  CHECK(dir().joins.size() == 1);
  CHECK(records_with(R"("op":"put")") == 1);
}

TEST_CASE_METHOD(idempotency_fixture,
                 "concurrent joins of a key whose first join fails all get "
                 "the error, and a retry joins again",
                 "[idempotency]") {
  for (auto& h : start_two_joins(join_mode::fail))
    h.receive([&](session&) { FAIL("a failed join was answered"); },
              [&](caf::error& err) { CHECK(code_of(err) == ec::unavailable); });
  CHECK(dir().joins.size() == 1);
  CHECK(disk().records.empty());
  dir().mode = join_mode::accept;
  CHECK(join("k").session_id == "s2");
  CHECK(dir().joins.size() == 2);
}

TEST_CASE_METHOD(idempotency_fixture,
                 "an error answer is not remembered: a retry with the same "
                 "key runs the join again",
                 "[idempotency]") {
  start();
  dir().mode = join_mode::fail;
  CHECK(code_of(join_error("k1")) == ec::unavailable);
  CHECK(keys().keys.empty());
  CHECK(disk().records.empty());
  dir().mode = join_mode::accept;
  auto s = join("k1");
  CHECK(s.session_id == "s2");
  CHECK(dir().joins.size() == 2);
  CHECK(same(join("k1"), s));
  CHECK(dir().joins.size() == 2);
}

TEST_CASE_METHOD(idempotency_fixture,
                 "a key whose record cannot be written: the session is "
                 "answered, but not remembered",
                 "[idempotency]") {
  start();
  disk().failing = true;
  auto s = join("k1");
  CHECK(s.session_id == "s1");
  CHECK(disk().failed_writes == 1);
  CHECK(keys().keys.empty());
  CHECK(keys().running.empty());
  // The retry is a real join again (the lobby's same-nick rule answers it).
  disk().failing = false;
  join("k1");
  CHECK(dir().joins.size() == 2);
  CHECK(keys().keys.size() == 1);
}

TEST_CASE_METHOD(idempotency_fixture,
                 "an expired key is ignored at once and deleted durably by "
                 "the next sweep",
                 "[idempotency]") {
  config.ttl = 90s;
  start();
  join("k1");
  join("k2");
  advance(60s); // a sweep: nothing expired yet
  CHECK(records_with(R"("op":"del")") == 0);
  CHECK(join("k1").session_id == "s1");
  sched.clock().advance_time(31s); // expired, no sweep due yet
  run();
  REQUIRE(keys().keys.size() == 2);
  // Ignored on lookup: the same key joins again, with any request.
  request other;
  other.body.nick = "Other";
  auto fresh = join("k1", other);
  CHECK(fresh.session_id == "s3");
  CHECK(dir().joins.size() == 3);
  // The sweep deletes the one still expired (k2), durably.
  advance(29s);
  CHECK(records_with(R"({"key":"k2","op":"del"})") == 1);
  CHECK(keys().keys.count("k2") == 0);
  CHECK(keys().keys.count("k1") == 1);
  CHECK(keys().by_expiry.size() == 1);
  // k1 lives on with its new answer, until it expires too.
  CHECK(same(join("k1", other), fresh));
  for (int i = 0; i < 2; ++i)
    advance(60s);
  CHECK(keys().keys.empty());
  CHECK(keys().by_expiry.empty());
  CHECK(records_with(R"({"key":"k1","op":"del"})") == 1);
}

TEST_CASE_METHOD(idempotency_fixture,
                 "a sweep whose deletes cannot be written keeps ignoring the "
                 "expired keys and tries again",
                 "[idempotency]") {
  config.ttl = 30s;
  start();
  join("k1");
  disk().failing = true;
  advance(60s);
  CHECK(disk().failed_writes == 1);
  CHECK(keys().keys.size() == 1);
  CHECK_FALSE(keys().keys.at("k1").leaving);
  disk().failing = false;
  advance(60s);
  CHECK(keys().keys.empty());
  CHECK(records_with(R"("op":"del")") == 1);
}

TEST_CASE_METHOD(idempotency_fixture,
                 "expired keys loaded from disk are deleted by the first "
                 "sweep at start-up",
                 "[idempotency]") {
  auto t = unix_now();
  session s;
  s.session_id = "old";
  s.is_bot = true;
  request r;
  std::vector<idempotency_entry> initial{
    {"gone", r.fingerprint(), "lobby-1", s, t - 10},
    {"kept", r.fingerprint(), "lobby-1", s, t + 3000}};
  start(std::move(initial));
  CHECK(records_with(R"({"key":"gone","op":"del"})") == 1);
  CHECK(keys().keys.size() == 1);
  CHECK(join("kept").session_id == "old");
  CHECK(dir().joins.empty());
}

TEST_CASE_METHOD(idempotency_fixture,
                 "past max_keys, a new key pushes out the one that expires "
                 "soonest, with a durable delete",
                 "[idempotency]") {
  config.max_keys = 2;
  start();
  join("a");
  advance(1s);
  join("b");
  advance(1s);
  join("c");
  CHECK(keys().keys.size() == 2);
  CHECK(keys().keys.count("a") == 0);
  CHECK(records_with(R"({"key":"a","op":"del"})") == 1);
  // A retry of a kept key is still answered from it; a new key again
  // pushes out the oldest.
  CHECK(join("b").session_id == "s2");
  join("d");
  CHECK(keys().keys.count("b") == 0);
  CHECK(keys().keys.count("c") == 1);
  CHECK(keys().keys.count("d") == 1);
  CHECK(keys().leaving == 0);
  CHECK(dir().joins.size() == 4);
}

TEST_CASE_METHOD(idempotency_fixture,
                 "keys are durable: after a restart on the same data dir a "
                 "retry gets the first answer without a join",
                 "[idempotency]") {
  test::temp_dir data;
  session first;
  {
    auto seed = std::make_shared<journal_store_seed>();
    load_idempotency_keys(data.path, *seed);
    auto files = spawn_journal_store(sys, seed, stats, false);
    aut = sys.spawn(idempotency, directory, files.store,
                    std::vector<idempotency_entry>{}, config, stats);
    run();
    first = join("k1");
    join("k2");
    self->send_exit(aut, caf::exit_reason::kill);
    self->send_exit(files.store, caf::exit_reason::kill);
    self->send_exit(files.writer, caf::exit_reason::kill);
    run();
  }
  auto seed = std::make_shared<journal_store_seed>();
  auto loaded = load_idempotency_keys(data.path, *seed);
  REQUIRE(loaded.size() == 2);
  auto files = spawn_journal_store(sys, seed, stats, false);
  aut = sys.spawn(idempotency, directory, files.store, std::move(loaded),
                  config, stats);
  run();
  CHECK(same(join("k1"), first));
  CHECK(dir().joins.size() == 2);
  request other;
  other.body.lobby_id = "lobby-9";
  CHECK(code_of(join_error("k1", other)) == ec::idempotency_key_reused);
  // A final snapshot, then a restart from it alone.
  ask<uint64_t>(files.store, atom::compact_v);
  self->send_exit(aut, caf::exit_reason::kill);
  self->send_exit(files.store, caf::exit_reason::kill);
  self->send_exit(files.writer, caf::exit_reason::kill);
  run();
  journal_store_seed again;
  auto reloaded = load_idempotency_keys(data.path, again);
  REQUIRE(reloaded.size() == 2);
  CHECK(reloaded[0].key == "k1");
  CHECK(reloaded[0].answer.session_id == first.session_id);
}

// -- cluster mode: keys another instance answered ------------------------------

namespace {

/// A key as another instance would have written it: its first answer is a
/// session `session_id` of the default request.
remote_change remote_key(const std::string& key, const std::string& session_id,
                         double expires_at = unix_now() + 3000) {
  request r;
  session s;
  s.session_id = session_id;
  s.nick = "Echo";
  s.is_bot = true;
  s.bot_name = "echo";
  s.provider_id = "p9";
  s.run_id = "run-" + session_id;
  idempotency_entry e{key, r.fingerprint(), r.body.lobby_id, s, expires_at};
  return remote_change{
    {}, key, std::make_shared<const std::string>(idempotency_entry_json(e))};
}

struct remote_idempotency_fixture : idempotency_fixture {
  void remote(std::vector<remote_change> changes, bool resync = false) {
    self->send(aut, atom::remote_v, remote_batch{std::move(changes), resync});
    run();
  }
};

} // namespace

TEST_CASE_METHOD(remote_idempotency_fixture,
                 "a key answered on another instance is answered here with "
                 "its session, without a join or a write",
                 "[idempotency][remote]") {
  start();
  remote({remote_key("k1", "remote-1")});
  auto s = join("k1");
  CHECK(s.session_id == "remote-1");
  CHECK(s.run_id == "run-remote-1");
  CHECK(dir().joins.empty());
  // Another request with that key is refused, as for a key of this one.
  request other;
  other.body.nick = "Other";
  CHECK(code_of(join_error("k1", other)) == ec::idempotency_key_reused);
  CHECK(disk().records.empty());
}

TEST_CASE_METHOD(remote_idempotency_fixture,
                 "a remote key keeps the first answer kept here; one expired "
                 "here is replaced",
                 "[idempotency][remote]") {
  config.sweep_interval = 10h;
  start();
  auto first = join("k1");
  REQUIRE(disk().records.size() == 1);
  remote({remote_key("k1", "remote-1")});
  CHECK(same(join("k1"), first));
  // Expired here (not swept yet): the key was answered anew elsewhere.
  advance(3601s);
  remote({remote_key("k1", "remote-2", unix_now() + 3601 + 3000)});
  CHECK(join("k1").session_id == "remote-2");
  CHECK(dir().joins.size() == 1);
  CHECK(disk().records.size() == 1);
}

TEST_CASE_METHOD(remote_idempotency_fixture,
                 "a key forgotten on another instance is forgotten here",
                 "[idempotency][remote]") {
  start();
  remote({remote_key("k1", "remote-1"), remote_key("k2", "remote-2")});
  remote({remote_change{{}, "k1", nullptr}, remote_change{{}, "nope", nullptr}});
  CHECK(keys().keys.count("k1") == 0);
  CHECK(keys().by_expiry.size() == 1);
  // The key joins again.
  CHECK(join("k1").session_id == "s1");
  CHECK(join("k2").session_id == "remote-2");
  CHECK(dir().joins.size() == 1);
  CHECK(records_with(R"("op":"del")") == 0);
}

TEST_CASE_METHOD(remote_idempotency_fixture,
                 "a resync forgets the keys it does not name",
                 "[idempotency][remote]") {
  start();
  join("local");
  remote({remote_key("k2", "remote-2"), remote_key("k3", "remote-3")});
  auto written = disk().records.size();
  remote({remote_key("k3", "remote-3")}, true);
  CHECK(keys().keys.size() == 1);
  CHECK(keys().keys.count("k3") == 1);
  CHECK(keys().by_expiry.size() == 1);
  CHECK(join("k3").session_id == "remote-3");
  CHECK(disk().records.size() == written);
  CHECK(join("local").session_id == "s2"); // joined again
}

TEST_CASE_METHOD(remote_idempotency_fixture,
                 "a remote key that does not decode is skipped and the rest "
                 "applied",
                 "[idempotency][remote]") {
  start();
  auto text = [](std::string parent, std::string key, std::string json) {
    return remote_change{std::move(parent), std::move(key),
                         std::make_shared<const std::string>(std::move(json))};
  };
  auto good = remote_key("k3", "remote-3");
  remote({text({}, "k1", "{nope"),
          text({}, "k1", R"({"key":"k1"})"), // no session
          text({}, "k2", *good.json),          // another key's entry
          text("lobby-1", "k3", *good.json),   // not a key
          text({}, "k2", ""),
          good});
  CHECK(keys().keys.size() == 1);
  CHECK(join("k3").session_id == "remote-3");
  CHECK(disk().records.empty());
}
