// The etcd store of cluster mode (cluster/store.cpp) on CAF's test
// coordinator over a scripted etcd (tests/scripted_etcd.hpp): every call it
// makes to etcd is recorded and answered by the test (or by a small model of
// etcd's transactions), timers move only with advance(). No etcd, no socket,
// no real time: commits and their fence, the group commit, the watch's
// remote changes and its own echoes, the reservations of joins' names, the
// settling of unanswered commits, and the resync after a compaction.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <nlohmann/json.hpp>

#include "actors/interfaces.hpp"
#include "actors/stats.hpp"
#include "cluster/cluster.hpp"
#include "etcd/etcd_client.hpp"
#include "model/clock.hpp"
#include "tests/scripted_etcd.hpp"

using namespace vb;
using namespace vb::test::etcd_answers;
using namespace std::chrono_literals;
using json = nlohmann::json;
using test::etcd_model;
using test::scripted_etcd;

namespace {

struct cluster_test_config : caf::actor_system_config {
  cluster_test_config() {
    set("scheduler.policy", caf::atom("testing"));
    set("logger.verbosity", caf::atom("quiet"));
    vb::add_message_types(*this);
    vb::add_cluster_types(*this);
  }
};

int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

/// One instance: its scripted client and a context that may commit (a
/// lease renewed just now, a TTL far longer than any test).
struct instance {
  std::shared_ptr<scripted_etcd> etcd = std::make_shared<scripted_etcd>();
  std::shared_ptr<cluster_context> ctx = std::make_shared<cluster_context>();
  std::shared_ptr<etcd::lease_status> lease
    = std::make_shared<etcd::lease_status>();
  std::shared_ptr<server_stats> stats = std::make_shared<server_stats>();

  instance(std::string id, int64_t lease_id) {
    ctx->client = etcd;
    ctx->prefix = "/vb/";
    ctx->instance_id = std::move(id);
    ctx->ttl = std::chrono::hours(1);
    lease->id_ = lease_id;
    lease->last_ok_ns_ = steady_now_ns();
    ctx->statuses.push_back(lease);
    ctx->status = lease.get();
    ctx->lease = lease_id;
  }

  std::string instance_key() const {
    return "/vb/instances/" + ctx->instance_id;
  }
};

/// What a store's owner heard.
struct owner_log {
  std::vector<remote_batch> batches;
};

remote_owner_actor::behavior_type
recording_owner(remote_owner_actor::pointer, std::shared_ptr<owner_log> log) {
  return {
    [log](atom::remote, remote_batch& b) { log->batches.push_back(std::move(b)); },
  };
}

/// A request's answer, once it came.
template <class T>
struct reply {
  bool done = false;
  std::optional<T> value;
  caf::error error;
};

/// The test coordinator with cluster mode's messages; the stores and the
/// helpers' actors are stopped at the end (the scripted client's callbacks
/// dropped first: they hold the stores).
struct store_fixture {
  cluster_test_config cfg;
  caf::actor_system sys{cfg};
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  std::vector<caf::actor> actors;
  std::vector<std::shared_ptr<scripted_etcd>> clients;

  void run() {
    sched.run();
  }

  void advance(caf::timespan d) {
    sched.clock().advance_time(d);
    sched.run();
  }

  etcd_store_handles start(instance& i, std::string owner, int64_t revision) {
    clients.push_back(i.etcd);
    auto h = spawn_etcd_store(sys, i.ctx, std::move(owner), revision, i.stats);
    actors.push_back(caf::actor_cast<caf::actor>(h.store));
    run();
    return h;
  }

  /// Names a recording owner for the store.
  std::shared_ptr<owner_log> own(const etcd_store_handles& h) {
    auto log = std::make_shared<owner_log>();
    auto o = sys.spawn(recording_owner, log);
    actors.push_back(caf::actor_cast<caf::actor>(o));
    caf::anon_send(h.owner, atom::peers_v, o);
    run();
    return log;
  }

  /// Sends a request from an actor of its own and runs the system; the
  /// answer is in the reply once it came (it may wait for etcd).
  template <class T, class Handle, class... Ts>
  std::shared_ptr<reply<T>> request(const Handle& h, Ts... xs) {
    auto r = std::make_shared<reply<T>>();
    auto asker = sys.spawn([r, h, xs...](caf::event_based_actor* a) mutable {
      a->request(h, caf::infinite, std::move(xs)...)
        .then(
          [r](T& x) {
            r->done = true;
            r->value = std::move(x);
          },
          [r](caf::error& e) {
            r->done = true;
            r->error = std::move(e);
          });
    });
    actors.push_back(asker);
    run();
    return r;
  }

  std::shared_ptr<reply<uint64_t>> write(const etcd_store_handles& h,
                                         store_batch b) {
    return request<uint64_t>(h.store, atom::write_v, std::move(b));
  }

  std::shared_ptr<reply<std::string>>
  reserve(const etcd_store_handles& h, const std::string& session_id,
          const std::string& nick = "Echo") {
    return request<std::string>(h.claims, atom::reserve_v, std::string{"L1"},
                                std::string{"echo"}, nick, session_id);
  }

  void leave(const etcd_store_handles& h, const std::string& session_id,
             const std::string& nick = "Echo") {
    caf::anon_send(h.claims, atom::leave_v, std::string{"L1"},
                   std::string{"echo"}, nick, session_id);
    run();
  }

  ~store_fixture() {
    for (auto& c : clients)
      c->drop_all();
    for (auto& a : actors)
      caf::anon_send_exit(a, caf::exit_reason::kill);
    sched.run();
  }
};

/// One change setting (value) or removing (nullopt) entries without a parent.
store_batch entries(
  std::vector<std::pair<std::string, std::optional<std::string>>> xs) {
  store_change c;
  c.record = "test";
  for (auto& [key, value] : xs)
    c.ops.push_back(image_op{
      {}, key, value ? std::make_shared<const std::string>(*value) : nullptr});
  return {c};
}

std::string session_of(const std::string& session_id) {
  return json{{"session_id", session_id},
              {"lobby_id", "L1"},
              {"bot_name", "echo"},
              {"nick", "Echo"}}
    .dump();
}

/// A join's commit: the member under its lobby and the name it reserved.
store_batch join_batch(const std::string& session_id,
                       const std::string& nick = "Echo") {
  auto s = std::make_shared<const std::string>(session_of(session_id));
  store_change c;
  c.record = "join";
  c.ops.push_back(image_op{"L1", session_id, s});
  c.claims.push_back(store_claim{"L1", "echo", nick, session_id, s});
  return {c};
}

const std::string claim = "/vb/joins/L1/echo/Echo";

std::string pending_value(const std::string& session_id,
                          const std::string& owner, double at) {
  return json{{"state", "pending"},
              {"session_id", session_id},
              {"owner", owner},
              {"at", at}}
    .dump();
}

bool is_fence(const etcd::compare& c, const std::string& instance_key,
              int64_t lease) {
  return c.key == instance_key && c.target == etcd::compare_target::lease
         && c.result == etcd::compare_result::equal && c.number == lease;
}

ec error_code(const caf::error& e) {
  return code_of(e);
}

} // namespace

// -- commits ------------------------------------------------------------------------

TEST_CASE_METHOD(store_fixture,
                 "etcd store: a write is one transaction fenced by the "
                 "instance's lease, acknowledged with etcd's revision; "
                 "batches behind it share the next",
                 "[cluster][store]") {
  instance a{"i1", 42};
  auto st = start(a, "providers", 100);
  // The watch of the owner's prefix starts after the revision it loaded.
  REQUIRE(a.etcd->watches.size() == 1);
  CHECK(a.etcd->watches[0].request.key == "/vb/providers/");
  CHECK(a.etcd->watches[0].request.prefix);
  CHECK(a.etcd->watches[0].request.start_revision == 101);
  CHECK(a.etcd->log == std::vector<std::string>{"watch"});

  auto w1 = write(st, entries({{"p1", R"({"provider_id":"p1"})"},
                               {"gone", std::nullopt}}));
  REQUIRE(a.etcd->txns.size() == 1);
  {
    auto& t = a.etcd->txns[0];
    CHECK(t.timeout == 3000ms);
    REQUIRE(t.request.compares.size() == 1);
    CHECK(is_fence(t.request.compares[0], "/vb/instances/i1", 42));
    REQUIRE(t.request.success.size() == 2);
    CHECK(t.request.success[0].op == etcd::txn_op::kind::put);
    CHECK(t.request.success[0].put.key == "/vb/providers/p1");
    CHECK(t.request.success[0].put.value == R"({"provider_id":"p1"})");
    CHECK(t.request.success[0].put.lease == 0); // state outlives the instance
    CHECK(t.request.success[1].op == etcd::txn_op::kind::del);
    CHECK(t.request.success[1].del.key == "/vb/providers/gone");
    CHECK(t.request.failure.empty());
  }
  // Not acknowledged before etcd answers.
  CHECK_FALSE(w1->done);

  // Two batches and a heartbeat (no answer wanted) wait behind it.
  auto w2 = write(st, entries({{"p2", "v1"}}));
  auto w3 = write(st, entries({{"p3", "x"}, {"p2", "v2"}}));
  caf::anon_send(st.store, atom::write_v, entries({{"hb", "{}"}}),
                 atom::sweep_v);
  run();
  CHECK(a.etcd->txns.size() == 1);
  CHECK_FALSE(w2->done);

  a.etcd->answer_txn(0, txn_succeeded(105));
  run();
  REQUIRE(w1->done);
  REQUIRE(w1->value);
  CHECK(*w1->value == 105);
  // The three share the next transaction; p2 once, with its later value.
  REQUIRE(a.etcd->txns.size() == 2);
  {
    auto& t = a.etcd->txns[1].request;
    REQUIRE(t.compares.size() == 1);
    CHECK(is_fence(t.compares[0], "/vb/instances/i1", 42));
    REQUIRE(t.success.size() == 3);
    CHECK(t.success[0].put.key == "/vb/providers/p2");
    CHECK(t.success[0].put.value == "v2");
    CHECK(t.success[1].put.key == "/vb/providers/p3");
    CHECK(t.success[2].put.key == "/vb/providers/hb");
  }
  CHECK_FALSE(w2->done);
  CHECK_FALSE(w3->done);
  a.etcd->answer_txn(1, txn_succeeded(106));
  run();
  REQUIRE(w2->value);
  REQUIRE(w3->value);
  CHECK(*w2->value == 106);
  CHECK(*w3->value == 106);
  CHECK(a.stats->cluster_commits == 2);
  CHECK(a.stats->cluster_failures == 0);
  CHECK(a.etcd->txns.size() == 2);
  // Nothing queued or in flight: a flush answers at once, and sends nothing.
  auto f = request<uint64_t>(st.store, atom::flush_v);
  CHECK(f->done);
  CHECK_FALSE(f->error);
  CHECK(a.etcd->log
        == std::vector<std::string>{"watch", "txn", "txn"});
}

TEST_CASE_METHOD(store_fixture,
                 "etcd store: a commit etcd does not answer fails with "
                 "storage_failed and marks etcd unavailable",
                 "[cluster][store]") {
  instance a{"i1", 42};
  auto st = start(a, "providers", 100);
  auto w = write(st, entries({{"p1", "{}"}}));
  REQUIRE(a.etcd->txns.size() == 1);
  a.etcd->answer_txn(0, txn_error());
  run();
  REQUIRE(w->done);
  CHECK_FALSE(w->value);
  CHECK(error_code(w->error) == ec::storage_failed);
  CHECK(a.ctx->failed_ns != 0);
  CHECK(a.stats->cluster_failures == 1);
  // Without joins in it there is nothing to settle: no second call.
  CHECK(a.etcd->txns.size() == 1);
  // The next commit goes through, and clears the mark.
  auto w2 = write(st, entries({{"p1", "{}"}}));
  REQUIRE(a.etcd->txns.size() == 2);
  a.etcd->answer_txn(1, txn_succeeded(7));
  run();
  REQUIRE(w2->value);
  CHECK(*w2->value == 7);
  CHECK(a.ctx->failed_ns == 0);
}

// -- the fence ---------------------------------------------------------------------

TEST_CASE_METHOD(store_fixture,
                 "etcd store: without a live lease a write fails with "
                 "storage_failed and sends nothing",
                 "[cluster][store][fence]") {
  instance a{"i1", 42};
  auto st = start(a, "lobbies", 100);
  SECTION("lease 0 (fenced)") {
    a.ctx->lease = 0;
  }
  SECTION("the keeper lost the lease") {
    a.lease->lost_ = true;
  }
  SECTION("renewed longer ago than 0.7 TTL") {
    a.ctx->ttl = 10s;
    a.lease->last_ok_ns_ = steady_now_ns() - 7'500'000'000; // 7.5 s > 7 s
  }
  SECTION("no keeper status") {
    a.ctx->status = nullptr;
  }
  auto w = write(st, entries({{"L9", "{}"}}));
  REQUIRE(w->done);
  CHECK(error_code(w->error) == ec::storage_failed);
  CHECK(a.stats->cluster_failures == 1);
  // A reservation is refused the same way.
  auto r = reserve(st, "s-1");
  REQUIRE(r->done);
  CHECK(error_code(r->error) == ec::storage_failed);
  // Nothing went to etcd.
  CHECK(a.etcd->txns.empty());
  CHECK(a.etcd->log == std::vector<std::string>{"watch"});
}

TEST_CASE_METHOD(store_fixture,
                 "etcd store: a lease renewed within 0.7 TTL may commit",
                 "[cluster][store][fence]") {
  instance a{"i1", 42};
  a.ctx->ttl = 10s;
  a.lease->last_ok_ns_ = steady_now_ns() - 6'000'000'000; // 6 s < 7 s
  auto st = start(a, "lobbies", 100);
  auto w = write(st, entries({{"L9", "{}"}}));
  CHECK_FALSE(w->done);
  REQUIRE(a.etcd->txns.size() == 1);
  CHECK(is_fence(a.etcd->txns[0].request.compares.at(0), "/vb/instances/i1", 42));
}

TEST_CASE_METHOD(store_fixture,
                 "etcd store: a transaction whose fence fails is not "
                 "acknowledged; a shared one is tried again batch by batch",
                 "[cluster][store][fence]") {
  // The instance key holds another lease (ours expired, a new one was
  // granted): a zombie that still believes in lease 42.
  etcd_model m;
  m.put("/vb/instances/i1", "{}", 43);
  instance a{"i1", 42};
  auto st = start(a, "providers", m.revision);
  auto w1 = write(st, entries({{"p1", "{}"}}));
  auto w2 = write(st, entries({{"p2", "{}"}}));
  auto w3 = write(st, entries({{"p3", "{}"}}));
  REQUIRE(a.etcd->txns.size() == 1);
  a.etcd->answer_txn(0, m.apply(a.etcd->txns[0].request));
  run();
  REQUIRE(w1->done);
  CHECK_FALSE(w1->value);
  CHECK(error_code(w1->error) == ec::storage_failed);
  CHECK_FALSE(m.get("/vb/providers/p1"));
  CHECK(a.stats->cluster_commits == 0);
  // p2 and p3 shared the next; it failed too, so each goes again alone.
  REQUIRE(a.etcd->txns.size() == 2);
  CHECK(a.etcd->txns[1].request.success.size() == 2);
  a.etcd->answer_txn(1, m.apply(a.etcd->txns[1].request));
  run();
  CHECK_FALSE(w2->done);
  CHECK_FALSE(w3->done);
  REQUIRE(a.etcd->txns.size() == 3);
  REQUIRE(a.etcd->txns[2].request.success.size() == 1);
  CHECK(a.etcd->txns[2].request.success[0].put.key == "/vb/providers/p2");
  a.etcd->answer_txn(2, m.apply(a.etcd->txns[2].request));
  run();
  REQUIRE(w2->done);
  CHECK(error_code(w2->error) == ec::storage_failed);
  // The instance has its new lease now: p3's own try commits.
  a.ctx->lease = 43;
  REQUIRE(a.etcd->txns.size() == 4);
  REQUIRE(a.etcd->txns[3].request.success.size() == 1);
  CHECK(a.etcd->txns[3].request.success[0].put.key == "/vb/providers/p3");
  // (It was sent with the lease of its time: 42, and fails as well.)
  CHECK(is_fence(a.etcd->txns[3].request.compares[0], "/vb/instances/i1", 42));
  a.etcd->answer_txn(3, m.apply(a.etcd->txns[3].request));
  run();
  REQUIRE(w3->done);
  CHECK(error_code(w3->error) == ec::storage_failed);
  CHECK(a.stats->cluster_failures == 3);
  // The next write carries the new lease and commits.
  auto w4 = write(st, entries({{"p4", "{}"}}));
  REQUIRE(a.etcd->txns.size() == 5);
  CHECK(is_fence(a.etcd->txns[4].request.compares[0], "/vb/instances/i1", 43));
  a.etcd->answer_txn(4, m.apply(a.etcd->txns[4].request));
  run();
  REQUIRE(w4->value);
  CHECK(*w4->value == static_cast<uint64_t>(m.revision));
  CHECK(m.get("/vb/providers/p4"));
  CHECK_FALSE(m.get("/vb/providers/p1"));
}

// -- the watch -----------------------------------------------------------------------

TEST_CASE_METHOD(store_fixture,
                 "etcd store: another instance's changes reach the owner; "
                 "its own writes echoed by the watch do not",
                 "[cluster][store][watch]") {
  instance a{"i1", 42};
  auto st = start(a, "providers", 100);
  // A change before the owner is named is kept for it.
  a.etcd->push(0, events({put_event("/vb/providers/p7", R"({"id":"p7"})", 101)}));
  run();
  auto owner = own(st);
  REQUIRE(owner->batches.size() == 1);
  REQUIRE(owner->batches[0].changes.size() == 1);
  CHECK(owner->batches[0].changes[0].key == "p7");
  REQUIRE(owner->batches[0].changes[0].json);
  CHECK(*owner->batches[0].changes[0].json == R"({"id":"p7"})");

  // Another instance's put and delete, an entry under a parent, and a key
  // that is no entry of this owner (skipped).
  a.etcd->push(0, events({put_event("/vb/providers/p8", R"({"id":"p8"})", 102),
                          delete_event("/vb/providers/p7", 103),
                          put_event("/vb/providers/par/k%20x", "{}", 104),
                          put_event("/vb/providers/a/b/c", "{}", 105)}));
  run();
  REQUIRE(owner->batches.size() == 2);
  {
    auto& b = owner->batches[1];
    CHECK_FALSE(b.resync);
    REQUIRE(b.changes.size() == 3);
    CHECK(b.changes[0].parent.empty());
    CHECK(b.changes[0].key == "p8");
    REQUIRE(b.changes[0].json);
    CHECK(*b.changes[0].json == R"({"id":"p8"})");
    CHECK(b.changes[1].key == "p7");
    CHECK_FALSE(b.changes[1].json); // removed
    CHECK(b.changes[2].parent == "par");
    CHECK(b.changes[2].key == "k x");
  }
  CHECK(a.stats->cluster_remote_changes == 4);

  // Its own write, echoed after etcd answered: not handed back.
  auto w1 = write(st, entries({{"p1", "mine"}}));
  REQUIRE(a.etcd->txns.size() == 1);
  a.etcd->answer_txn(0, txn_succeeded(120));
  run();
  REQUIRE(w1->value);
  a.etcd->push(0, events({put_event("/vb/providers/p1", "mine", 120)}));
  run();
  CHECK(owner->batches.size() == 2);

  // Echoed before the answer: held; another key in the same update goes on
  // at once.
  auto w2 = write(st, entries({{"p2", "mine"}}));
  REQUIRE(a.etcd->txns.size() == 2);
  a.etcd->push(0, events({put_event("/vb/providers/p2", "mine", 121),
                          put_event("/vb/providers/p5", "theirs", 122)}));
  run();
  REQUIRE(owner->batches.size() == 3);
  REQUIRE(owner->batches[2].changes.size() == 1);
  CHECK(owner->batches[2].changes[0].key == "p5");
  a.etcd->answer_txn(1, txn_succeeded(121));
  run();
  REQUIRE(w2->value);
  CHECK(*w2->value == 121);
  CHECK(owner->batches.size() == 3); // the held echo was its own

  // A later change of its key by another instance does go to the owner.
  a.etcd->push(0, events({put_event("/vb/providers/p1", "theirs", 125)}));
  run();
  REQUIRE(owner->batches.size() == 4);
  REQUIRE(owner->batches[3].changes.size() == 1);
  CHECK(owner->batches[3].changes[0].key == "p1");
  CHECK(*owner->batches[3].changes[0].json == "theirs");

  // A change of a key in flight whose commit fails is someone else's: held,
  // then handed over (nothing of ours applied).
  auto w3 = write(st, entries({{"p3", "mine"}}));
  REQUIRE(a.etcd->txns.size() == 3);
  a.etcd->push(0, events({put_event("/vb/providers/p3", "theirs", 130)}));
  run();
  CHECK(owner->batches.size() == 4);
  a.etcd->answer_txn(2, txn_failed(130));
  run();
  CHECK(error_code(w3->error) == ec::storage_failed);
  REQUIRE(owner->batches.size() == 5);
  REQUIRE(owner->batches[4].changes.size() == 1);
  CHECK(owner->batches[4].changes[0].key == "p3");
  CHECK(*owner->batches[4].changes[0].json == "theirs");
}

// -- resync ----------------------------------------------------------------------------

TEST_CASE_METHOD(store_fixture,
                 "etcd store: after a compaction the store reads its prefix "
                 "whole and hands the owner everything as a resync",
                 "[cluster][store][resync]") {
  instance a{"i1", 42};
  auto st = start(a, "providers", 100);
  auto owner = own(st);
  // An update the old watch had already sent when it ended (in the mailbox).
  auto late = a.etcd->watches[0].on_update;
  a.etcd->push(0, compacted(150));
  run();
  // The old watch is cancelled; the whole prefix is read at one revision.
  CHECK(a.etcd->cancels == std::vector<uint64_t>{a.etcd->watches[0].id});
  CHECK(a.etcd->watches[0].cancelled);
  REQUIRE(a.etcd->ranges.size() == 1);
  {
    auto& r = a.etcd->ranges[0].request;
    CHECK(r.key == "/vb/providers/");
    CHECK(r.range_end == etcd::prefix_end("/vb/providers/"));
    CHECK(r.range_end == "/vb/providers0");
    CHECK(r.revision == 0);
    CHECK(r.limit == 1000);
  }
  late(events({put_event("/vb/providers/old", "{}", 140)}));
  run();
  CHECK(owner->batches.empty()); // of the ended watch: ignored

  SECTION("two pages") {
    a.etcd->answer_range(0, range_page(200,
                                       {kv("/vb/providers/p1", "v1", 120),
                                        kv("/vb/providers/p2", "v2", 130)},
                                       true));
    // The next page from after the last key, at the first page's revision.
    REQUIRE(a.etcd->ranges.size() == 2);
    {
      auto& r = a.etcd->ranges[1].request;
      CHECK(r.key == std::string("/vb/providers/p2") + '\0');
      CHECK(r.range_end == "/vb/providers0");
      CHECK(r.revision == 200);
    }
    a.etcd->answer_range(1, range_page(200,
                                       {kv("/vb/providers/p3", "v3", 190),
                                        kv("/vb/providers/a/b/c", "{}", 191)}));
    run();
    REQUIRE(owner->batches.size() == 1);
    auto& b = owner->batches[0];
    CHECK(b.resync);
    REQUIRE(b.changes.size() == 3);
    CHECK(b.changes[0].key == "p1");
    CHECK(*b.changes[0].json == "v1");
    CHECK(b.changes[1].key == "p2");
    CHECK(b.changes[2].key == "p3");
    CHECK(*b.changes[2].json == "v3");
    // A new watch from after the read's revision; its events go on.
    REQUIRE(a.etcd->watches.size() == 2);
    CHECK(a.etcd->watches[1].request.key == "/vb/providers/");
    CHECK(a.etcd->watches[1].request.start_revision == 201);
    a.etcd->push(1, events({put_event("/vb/providers/p4", "v4", 201)}));
    run();
    REQUIRE(owner->batches.size() == 2);
    CHECK_FALSE(owner->batches[1].resync);
    REQUIRE(owner->batches[1].changes.size() == 1);
    CHECK(owner->batches[1].changes[0].key == "p4");
    // The compact answer is the resync's revision now.
    auto c = request<uint64_t>(st.store, atom::compact_v);
    REQUIRE(c->value);
    CHECK(*c->value == 201);
  }
  SECTION("a read that fails is tried again a second later") {
    etcd::range_result failed;
    failed.error = unavailable();
    a.etcd->answer_range(0, failed);
    run();
    CHECK(owner->batches.empty());
    CHECK(a.etcd->watches.size() == 1);
    advance(999ms);
    CHECK(a.etcd->ranges.size() == 1);
    advance(1ms);
    REQUIRE(a.etcd->ranges.size() == 2);
    a.etcd->answer_range(1, range_page(300, {kv("/vb/providers/p9", "v9", 250)}));
    run();
    REQUIRE(owner->batches.size() == 1);
    CHECK(owner->batches[0].resync);
    REQUIRE(owner->batches[0].changes.size() == 1);
    CHECK(owner->batches[0].changes[0].key == "p9");
    REQUIRE(a.etcd->watches.size() == 2);
    CHECK(a.etcd->watches[1].request.start_revision == 301);
  }
}

TEST_CASE_METHOD(store_fixture,
                 "etcd store: a watch event held for a key in flight does not "
                 "outlive a resync that read a newer value",
                 "[cluster][store][resync]") {
  instance a{"i1", 42};
  auto st = start(a, "providers", 100);
  auto owner = own(st);
  // Our write of p1 is in flight; another instance's put of p1 (190) comes
  // through the watch and is held until our commit answers.
  auto w = write(st, entries({{"p1", "mine"}}));
  REQUIRE(a.etcd->txns.size() == 1);
  a.etcd->push(0, events({put_event("/vb/providers/p1", "theirs-190", 190)}));
  run();
  CHECK(owner->batches.empty());
  // The watch falls behind a compaction; the resync reads p1 as it is at
  // 200 (another put of theirs at 195).
  a.etcd->push(0, compacted(198));
  run();
  REQUIRE(a.etcd->ranges.size() == 1);
  a.etcd->answer_range(0, range_page(200, {kv("/vb/providers/p1", "theirs-195", 195)}));
  run();
  REQUIRE(owner->batches.size() == 1);
  CHECK(owner->batches[0].resync);
  REQUIRE(owner->batches[0].changes.size() == 1);
  CHECK(*owner->batches[0].changes[0].json == "theirs-195");
  // Our commit fails (a condition): nothing of ours applied.
  a.etcd->answer_txn(0, txn_failed(200));
  run();
  CHECK(error_code(w->error) == ec::storage_failed);
  // The owner's p1 must stay at what etcd holds (195): the held event of
  // 190, older than the resync, must not be handed over after it.
  for (std::size_t i = 1; i < owner->batches.size(); ++i)
    for (auto& c : owner->batches[i].changes) {
      INFO("a change handed over after the resync: " << c.key << " = "
           << (c.json ? *c.json : std::string{"(removed)"}));
      CHECK_FALSE((c.key == "p1" && c.json && *c.json == "theirs-190"));
    }
  CHECK(owner->batches.size() == 1);
}

// -- reservations of joins' names -------------------------------------------------------

namespace {

/// Two instances on one etcd (the model), each with its lobbies' store.
struct two_instances : store_fixture {
  etcd_model m;
  instance a{"i1", 42};
  instance b{"i2", 43};
  etcd_store_handles sa;
  etcd_store_handles sb;

  two_instances() {
    m.put("/vb/instances/i1", "{}", 42);
    m.put("/vb/instances/i2", "{}", 43);
    sa = start(a, "lobbies", m.revision);
    sb = start(b, "lobbies", m.revision);
  }

  /// Answers the i-th transaction of `x` as etcd (the model) would.
  void apply(instance& x, std::size_t i) {
    x.etcd->answer_txn(i, m.apply(x.etcd->txns.at(i).request));
    run();
  }
};

} // namespace

TEST_CASE_METHOD(two_instances,
                 "etcd claims: of two reservations of one name the first "
                 "wins; the second waits for it and answers its member",
                 "[cluster][claims]") {
  auto ra = reserve(sa, "s-a");
  auto rb = reserve(sb, "s-b");
  REQUIRE(a.etcd->txns.size() == 1);
  REQUIRE(b.etcd->txns.size() == 1);
  {
    auto& t = a.etcd->txns[0].request;
    REQUIRE(t.compares.size() == 2);
    CHECK(t.compares[0].key == claim);
    CHECK(t.compares[0].target == etcd::compare_target::create);
    CHECK(t.compares[0].result == etcd::compare_result::equal);
    CHECK(t.compares[0].number == 0);
    CHECK(is_fence(t.compares[1], "/vb/instances/i1", 42));
    REQUIRE(t.success.size() == 1);
    CHECK(t.success[0].op == etcd::txn_op::kind::put);
    CHECK(t.success[0].put.key == claim);
    CHECK(t.success[0].put.lease == 42); // goes with the instance
    auto v = json::parse(t.success[0].put.value);
    CHECK(v["state"] == "pending");
    CHECK(v["session_id"] == "s-a");
    CHECK(v["owner"] == "i1");
    CHECK(std::abs(v["at"].get<double>() - unix_now()) < 60);
    REQUIRE(t.failure.size() == 1);
    CHECK(t.failure[0].op == etcd::txn_op::kind::range);
    CHECK(t.failure[0].range.key == claim);
  }
  // etcd runs A's first: A holds the name.
  apply(a, 0);
  apply(b, 0);
  REQUIRE(ra->done);
  REQUIRE(ra->value);
  CHECK(*ra->value == "");
  REQUIRE(m.get(claim));
  CHECK(json::parse(m.get(claim)->value)["session_id"] == "s-a");
  // B found it pending on A: it waits, and asks again every 100 ms.
  CHECK_FALSE(rb->done);
  CHECK(b.etcd->txns.size() == 1);
  advance(99ms);
  CHECK(b.etcd->txns.size() == 1);
  advance(1ms);
  REQUIRE(b.etcd->txns.size() == 2);
  CHECK(b.etcd->txns[1].request.compares.at(0).target
        == etcd::compare_target::create);
  apply(b, 1); // still pending
  CHECK_FALSE(rb->done);

  // A commits its member: the transaction compares its own reservation.
  auto wa = write(sa, join_batch("s-a"));
  REQUIRE(a.etcd->txns.size() == 2);
  {
    auto& t = a.etcd->txns[1].request;
    REQUIRE(t.compares.size() == 2);
    CHECK(is_fence(t.compares[0], "/vb/instances/i1", 42));
    CHECK(t.compares[1].key == claim);
    CHECK(t.compares[1].target == etcd::compare_target::value);
    CHECK(t.compares[1].result == etcd::compare_result::equal);
    CHECK(t.compares[1].value == a.etcd->txns[0].request.success[0].put.value);
    REQUIRE(t.success.size() == 2);
    CHECK(t.success[0].put.key == "/vb/lobbies/L1/s-a");
    CHECK(t.success[0].put.value == session_of("s-a"));
    CHECK(t.success[1].put.key == claim);
    CHECK(t.success[1].put.lease == 0); // the member outlives the instance
    auto v = json::parse(t.success[1].put.value);
    CHECK(v["state"] == "joined");
    CHECK(v["session_id"] == "s-a");
    CHECK(v["session"] == json::parse(session_of("s-a")));
  }
  apply(a, 1);
  REQUIRE(wa->value);
  CHECK(*wa->value == static_cast<uint64_t>(m.revision));

  // B's next try finds the member: its session is B's answer.
  advance(100ms);
  REQUIRE(b.etcd->txns.size() == 3);
  apply(b, 2);
  REQUIRE(rb->done);
  REQUIRE(rb->value);
  CHECK(json::parse(*rb->value) == json::parse(session_of("s-a")));
  // One member, one name in etcd.
  CHECK(m.get("/vb/lobbies/L1/s-a"));
  CHECK_FALSE(m.get("/vb/lobbies/L1/s-b"));
}

TEST_CASE_METHOD(two_instances,
                 "etcd claims: names reserved while a reservation is in flight "
                 "share the next transaction; a taken one among them sends "
                 "each alone",
                 "[cluster][claims]") {
  auto r0 = reserve(sa, "s-0", "N0");
  REQUIRE(a.etcd->txns.size() == 1); // alone: nothing was in flight
  auto r1 = reserve(sa, "s-1", "N1");
  auto r2 = reserve(sa, "s-2", "N2");
  auto r3 = reserve(sa, "s-3", "N3");
  CHECK(a.etcd->txns.size() == 1); // waiting for the one in flight
  apply(a, 0);
  REQUIRE(r0->value);
  REQUIRE(a.etcd->txns.size() == 2);
  auto& shared = a.etcd->txns[1].request;
  CHECK(shared.compares.size() == 4); // three names and the fence
  CHECK(shared.success.size() == 3);
  CHECK(is_fence(shared.compares.back(), "/vb/instances/i1", 42));

  SECTION("all free: one commit reserves the three") {
    apply(a, 1);
    for (auto& r : {r1, r2, r3}) {
      REQUIRE(r->value);
      CHECK(*r->value == "");
    }
    CHECK(json::parse(m.get("/vb/joins/L1/echo/N2")->value)["session_id"] == "s-2");
    CHECK(a.etcd->txns.size() == 2);
  }
  SECTION("one is joined already: each goes alone, that one answers the "
          "member's session, the others are reserved") {
    m.put("/vb/joins/L1/echo/N2", R"({"state":"joined","session_id":"s-9","session":)"
                                    + session_of("s-9") + "}");
    apply(a, 1);
    CHECK_FALSE(r1->done);
    REQUIRE(a.etcd->txns.size() == 3);
    CHECK(a.etcd->txns[2].request.success.size() == 1);
    apply(a, 2);
    apply(a, 3);
    apply(a, 4);
    REQUIRE(r1->value);
    CHECK(*r1->value == "");
    REQUIRE(r2->value);
    CHECK(json::parse(*r2->value) == json::parse(session_of("s-9")));
    REQUIRE(r3->value);
    CHECK(*r3->value == "");
    CHECK(a.etcd->txns.size() == 5);
  }
}

TEST_CASE_METHOD(two_instances,
                 "etcd claims: what the holder of a name decides",
                 "[cluster][claims]") {
  SECTION("a member holds it: its session is the answer") {
    m.put(claim, R"({"state":"joined","session_id":"s-0","session":)"
                   + session_of("s-0") + "}");
    auto r = reserve(sa, "s-1");
    apply(a, 0);
    REQUIRE(r->value);
    CHECK(json::parse(*r->value) == json::parse(session_of("s-0")));
    CHECK(a.etcd->txns.size() == 1);
  }
  SECTION("this session's own reservation is its already; its commit "
          "compares etcd's value") {
    auto held = pending_value("s-1", "i1", unix_now() - 5);
    m.put(claim, held, 42);
    auto r = reserve(sa, "s-1");
    apply(a, 0);
    REQUIRE(r->value);
    CHECK(*r->value == "");
    auto w = write(sa, join_batch("s-1"));
    REQUIRE(a.etcd->txns.size() == 2);
    CHECK(a.etcd->txns[1].request.compares.at(1).value == held);
    apply(a, 1);
    REQUIRE(w->value);
    CHECK(json::parse(m.get(claim)->value)["state"] == "joined");
  }
  SECTION("a reservation of this instance for another session is taken over") {
    m.put(claim, pending_value("s-0", "i1", unix_now()), 42);
    auto rev = m.get(claim)->mod_revision;
    auto r = reserve(sa, "s-1");
    apply(a, 0);
    CHECK_FALSE(r->done);
    REQUIRE(a.etcd->txns.size() == 2);
    auto& t = a.etcd->txns[1].request;
    REQUIRE(t.compares.size() == 2);
    CHECK(t.compares[0].key == claim);
    CHECK(t.compares[0].target == etcd::compare_target::mod);
    CHECK(t.compares[0].number == rev);
    CHECK(is_fence(t.compares[1], "/vb/instances/i1", 42));
    apply(a, 1);
    REQUIRE(r->value);
    CHECK(*r->value == "");
    CHECK(json::parse(m.get(claim)->value)["session_id"] == "s-1");
  }
  SECTION("another instance's reservation older than 60 s is taken over") {
    m.put(claim, pending_value("s-0", "i2", unix_now() - 61), 43);
    auto r = reserve(sa, "s-1");
    apply(a, 0);
    REQUIRE(a.etcd->txns.size() == 2);
    CHECK(a.etcd->txns[1].request.compares.at(0).target
          == etcd::compare_target::mod);
    apply(a, 1);
    REQUIRE(r->value);
    CHECK(*r->value == "");
    auto v = json::parse(m.get(claim)->value);
    CHECK(v["session_id"] == "s-1");
    CHECK(v["owner"] == "i1");
    CHECK(m.get(claim)->lease == 42);
  }
  SECTION("another instance's fresh reservation is waited for") {
    m.put(claim, pending_value("s-0", "i2", unix_now() - 50), 43);
    auto r = reserve(sa, "s-1");
    apply(a, 0);
    CHECK_FALSE(r->done);
    advance(100ms);
    REQUIRE(a.etcd->txns.size() == 2);
    // Its join failed: it gave the name back; the next try takes it.
    m.erase(claim);
    apply(a, 1);
    REQUIRE(r->value);
    CHECK(*r->value == "");
    CHECK(json::parse(m.get(claim)->value)["session_id"] == "s-1");
  }
  SECTION("only the fence failed (the name is free): storage_failed") {
    m.put("/vb/instances/i1", "{}", 44); // a lease that is not ours
    auto r = reserve(sa, "s-1");
    apply(a, 0);
    REQUIRE(r->done);
    CHECK(error_code(r->error) == ec::storage_failed);
    CHECK_FALSE(m.get(claim));
    CHECK(a.etcd->txns.size() == 1);
  }
}

TEST_CASE_METHOD(two_instances,
                 "etcd claims: a reservation taken over whose holder gave it "
                 "back meanwhile is taken afresh, not failed for want of a "
                 "lease",
                 "[cluster][claims]") {
  // This instance's reservation for an earlier session (its join over).
  m.put(claim, pending_value("s-0", "i1", unix_now()), 42);
  auto r = reserve(sa, "s-1");
  apply(a, 0);
  REQUIRE(a.etcd->txns.size() == 2);
  CHECK(a.etcd->txns[1].request.compares.at(0).target
        == etcd::compare_target::mod);
  // Before the takeover runs, the earlier session's release deletes it.
  m.erase(claim);
  apply(a, 1);
  // The lease is live and the name is free: no "no live lease" failure.
  INFO("answer: " << (r->value ? "\"" + *r->value + "\""
                               : (r->done ? sys.render(r->error) : "none")));
  CHECK_FALSE((r->done && r->error));
  REQUIRE(a.etcd->txns.size() == 3);
  CHECK(a.etcd->txns[2].request.compares.at(0).target
        == etcd::compare_target::create);
  apply(a, 2);
  REQUIRE(r->value);
  CHECK(*r->value == "");
}

TEST_CASE_METHOD(two_instances,
                 "etcd claims: a release gives the name back",
                 "[cluster][claims]") {
  auto r = reserve(sa, "s-1");
  apply(a, 0);
  REQUIRE(r->value);
  auto value = m.get(claim)->value;
  leave(sa, "s-1");
  REQUIRE(a.etcd->txns.size() == 2);
  {
    auto& t = a.etcd->txns[1].request;
    REQUIRE(t.compares.size() == 1);
    CHECK(t.compares[0].key == claim);
    CHECK(t.compares[0].target == etcd::compare_target::value);
    CHECK(t.compares[0].value == value);
    REQUIRE(t.success.size() == 1);
    CHECK(t.success[0].op == etcd::txn_op::kind::del);
    CHECK(t.success[0].del.key == claim);
  }
  apply(a, 1);
  CHECK_FALSE(m.get(claim));
  // Not this instance's any more: a second release sends nothing, nor one
  // of a session it never reserved.
  leave(sa, "s-1");
  leave(sa, "s-9");
  CHECK(a.etcd->txns.size() == 2);
  advance(60s);
  CHECK(a.etcd->txns.size() == 2);
  // The other instance takes it at once.
  auto rb = reserve(sb, "s-2");
  apply(b, 0);
  REQUIRE(rb->value);
  CHECK(*rb->value == "");

  SECTION("a release etcd does not answer is tried again every second") {
    auto r2 = reserve(sa, "s-3", "Other");
    apply(a, 2);
    REQUIRE(r2->value);
    const std::string other = "/vb/joins/L1/echo/Other";
    leave(sa, "s-3", "Other");
    REQUIRE(a.etcd->txns.size() == 4);
    a.etcd->answer_txn(3, txn_error());
    run();
    advance(999ms);
    CHECK(a.etcd->txns.size() == 4);
    advance(1ms);
    REQUIRE(a.etcd->txns.size() == 5);
    CHECK(a.etcd->txns[4].request.compares.at(0).value
          == a.etcd->txns[3].request.compares.at(0).value);
    apply(a, 4);
    CHECK_FALSE(m.get(other));
    advance(10s);
    CHECK(a.etcd->txns.size() == 5);
  }
}

TEST_CASE_METHOD(two_instances,
                 "etcd claims: a join's commit checks its own reservation; "
                 "a lost one fails only its own join",
                 "[cluster][claims]") {
  auto r = reserve(sa, "s-1");
  apply(a, 0);
  REQUIRE(r->value);
  // A commit in flight, so that the next ones share a transaction.
  auto w0 = write(sa, entries({{"L0", "{}"}}));
  REQUIRE(a.etcd->txns.size() == 2);
  // A join of a name never reserved here, and a lobby header.
  auto bad = write(sa, join_batch("s-9", "Stranger"));
  auto hdr = write(sa, entries({{"L2", "{}"}}));
  apply(a, 1);
  REQUIRE(w0->value);
  REQUIRE(a.etcd->txns.size() == 3);
  {
    auto& t = a.etcd->txns[2].request;
    REQUIRE(t.compares.size() == 2);
    CHECK(t.compares[1].key == "/vb/joins/L1/echo/Stranger");
    CHECK(t.compares[1].target == etcd::compare_target::value);
    // A value no reservation has.
    CHECK(t.compares[1].value == "(not reserved here)");
    CHECK(t.success.size() == 3);
  }
  apply(a, 2); // fails: then each batch alone
  REQUIRE(a.etcd->txns.size() == 4);
  CHECK(a.etcd->txns[3].request.success.size() == 2); // the join alone
  apply(a, 3);
  REQUIRE(bad->done);
  CHECK(error_code(bad->error) == ec::storage_failed);
  CHECK_FALSE(m.get("/vb/lobbies/L1/s-9"));
  REQUIRE(a.etcd->txns.size() == 5);
  apply(a, 4);
  REQUIRE(hdr->value);
  CHECK(m.get("/vb/lobbies/L2"));

  SECTION("a reservation taken over by another instance fails the commit") {
    // B took the name over (A's looked stale to it).
    m.put(claim, pending_value("s-b", "i2", unix_now()), 43);
    auto w = write(sa, join_batch("s-1"));
    REQUIRE(a.etcd->txns.size() == 6);
    apply(a, 5);
    REQUIRE(w->done);
    CHECK(error_code(w->error) == ec::storage_failed);
    CHECK_FALSE(m.get("/vb/lobbies/L1/s-1"));
    CHECK(json::parse(m.get(claim)->value)["session_id"] == "s-b");
  }
  SECTION("its own reservation commits; the name is its member's then") {
    auto w = write(sa, join_batch("s-1"));
    REQUIRE(a.etcd->txns.size() == 6);
    apply(a, 5);
    REQUIRE(w->value);
    CHECK(m.get("/vb/lobbies/L1/s-1"));
    CHECK(json::parse(m.get(claim)->value)["state"] == "joined");
    // No reservation to give back any more: a release sends nothing.
    leave(sa, "s-1");
    CHECK(a.etcd->txns.size() == 6);
  }
}

TEST_CASE_METHOD(two_instances,
                 "etcd claims: a join's commit etcd did not answer is settled "
                 "by its reservation",
                 "[cluster][claims]") {
  auto r = reserve(sa, "s-1");
  apply(a, 0);
  REQUIRE(r->value);
  auto reservation = m.get(claim)->value;
  auto w = write(sa, join_batch("s-1"));
  REQUIRE(a.etcd->txns.size() == 2);
  a.etcd->answer_txn(1, txn_error());
  run();
  CHECK_FALSE(w->done);
  // The settling transaction: mark the reservation taken back if it is
  // still pending, else read it.
  REQUIRE(a.etcd->txns.size() == 3);
  {
    auto& t = a.etcd->txns[2].request;
    REQUIRE(t.compares.size() == 1);
    CHECK(t.compares[0].key == claim);
    CHECK(t.compares[0].target == etcd::compare_target::value);
    CHECK(t.compares[0].value == reservation);
    REQUIRE(t.success.size() == 1);
    CHECK(t.success[0].put.key == claim);
    CHECK(t.success[0].put.lease == 42);
    auto v = json::parse(t.success[0].put.value);
    CHECK(v["taken_back"] == true);
    CHECK(v["session_id"] == "s-1");
    REQUIRE(t.failure.size() == 1);
    CHECK(t.failure[0].op == etcd::txn_op::kind::range);
  }

  SECTION("it had not applied: it never can; the name is given back") {
    apply(a, 2);
    REQUIRE(w->done);
    CHECK(error_code(w->error) == ec::storage_failed);
    CHECK(a.ctx->failed_ns != 0);
    // The late commit can no longer apply (its compare fails).
    CHECK_FALSE(m.apply(a.etcd->txns[1].request).succeeded);
    // The taken-back reservation is deleted.
    REQUIRE(a.etcd->txns.size() == 4);
    CHECK(a.etcd->txns[3].request.compares.at(0).value
          == m.get(claim)->value);
    apply(a, 3);
    CHECK_FALSE(m.get(claim));
  }
  SECTION("it had applied: the commit is acknowledged with its revision") {
    m.apply(a.etcd->txns[1].request); // etcd applied it; the answer was lost
    auto rev = m.get(claim)->mod_revision;
    apply(a, 2);
    REQUIRE(w->value);
    CHECK(*w->value == static_cast<uint64_t>(rev));
    CHECK(a.etcd->txns.size() == 3); // nothing to give back
  }
  SECTION("etcd still does not answer: asked again every 500 ms") {
    a.etcd->answer_txn(2, txn_error());
    run();
    advance(499ms);
    CHECK(a.etcd->txns.size() == 3);
    advance(1ms);
    REQUIRE(a.etcd->txns.size() == 4);
    CHECK(a.etcd->txns[3].request.compares.at(0).value == reservation);
    CHECK_FALSE(w->done);
    apply(a, 3);
    REQUIRE(w->done);
    CHECK(error_code(w->error) == ec::storage_failed);
  }
}

TEST_CASE_METHOD(two_instances,
                 "etcd claims: a reservation etcd did not answer is given "
                 "back, and looked for again at 1, 2, 4, 8 and 16 s",
                 "[cluster][claims]") {
  auto r = reserve(sa, "s-1");
  REQUIRE(a.etcd->txns.size() == 1);
  auto value = a.etcd->txns[0].request.success.at(0).put.value;
  a.etcd->answer_txn(0, txn_error());
  run();
  REQUIRE(r->done);
  CHECK(error_code(r->error) == ec::storage_failed);
  // Given back at once: a delete if its value is there.
  REQUIRE(a.etcd->txns.size() == 2);
  {
    auto& t = a.etcd->txns[1].request;
    REQUIRE(t.compares.size() == 1);
    CHECK(t.compares[0].value == value);
    REQUIRE(t.success.size() == 1);
    CHECK(t.success[0].op == etcd::txn_op::kind::del);
  }
  SECTION("it never applies: five more looks, then none") {
    apply(a, 1); // nothing there
    std::size_t n = 2;
    for (auto wait : {1s, 2s, 4s, 8s, 16s}) {
      advance(wait - 1ms);
      CHECK(a.etcd->txns.size() == n);
      advance(1ms);
      REQUIRE(a.etcd->txns.size() == n + 1);
      CHECK(a.etcd->txns[n].request.compares.at(0).value == value);
      apply(a, n);
      ++n;
    }
    advance(120s);
    CHECK(a.etcd->txns.size() == 7);
  }
  SECTION("it applies late: the next look deletes it") {
    apply(a, 1); // nothing there yet
    m.apply(a.etcd->txns[0].request); // the reservation applies now
    REQUIRE(m.get(claim));
    advance(1s);
    REQUIRE(a.etcd->txns.size() == 3);
    apply(a, 2);
    CHECK_FALSE(m.get(claim));
    advance(120s);
    CHECK(a.etcd->txns.size() == 3);
  }
}

namespace {

/// A leave's commit: the member gone from its lobby, its name given back.
store_batch leave_batch(const std::string& session_id) {
  store_change c;
  c.record = "leave";
  c.ops.push_back(image_op{"L1", session_id, nullptr});
  c.claims.push_back(store_claim{"L1", "echo", "Echo", session_id, nullptr});
  return {c};
}

std::string joined(const std::string& session_id) {
  return R"({"state":"joined","session_id":)" + json(session_id).dump()
         + R"(,"session":)" + session_of(session_id) + "}";
}

} // namespace

TEST_CASE_METHOD(two_instances,
                 "etcd claims: a leave gives the name back only while its "
                 "member is there; one applied twice leaves the name to its "
                 "new holder",
                 "[cluster][claims]") {
  SECTION("its member is there: the member and the name go together") {
    m.put("/vb/lobbies/L1/s-a", session_of("s-a"));
    m.put(claim, joined("s-a"));
    auto w = write(sa, leave_batch("s-a"));
    REQUIRE(a.etcd->txns.size() == 1);
    auto& t = a.etcd->txns[0].request;
    REQUIRE(t.compares.size() == 2);
    CHECK(t.compares[1].key == "/vb/lobbies/L1/s-a");
    CHECK(t.compares[1].target == etcd::compare_target::version);
    CHECK(t.compares[1].result == etcd::compare_result::greater);
    CHECK(t.compares[1].number == 0);
    apply(a, 0);
    REQUIRE(w->value);
    CHECK_FALSE(m.get("/vb/lobbies/L1/s-a"));
    CHECK_FALSE(m.get(claim));
  }
  SECTION("its member left already (another instance applied the leave) "
          "and s-b holds the name now: the name stays s-b's") {
    m.put("/vb/lobbies/L1/s-b", session_of("s-b"));
    m.put(claim, joined("s-b"));
    auto w = write(sa, leave_batch("s-a"));
    apply(a, 0);
    CHECK_FALSE(w->done);
    // Sent again without the name, and answered: s-a has left.
    REQUIRE(a.etcd->txns.size() == 2);
    for (auto& op : a.etcd->txns[1].request.success)
      CHECK(op.del.key != claim);
    apply(a, 1);
    REQUIRE(w->value);
    REQUIRE(m.get(claim));
    CHECK(json::parse(m.get(claim)->value)["session_id"] == "s-b");
    CHECK(m.get("/vb/lobbies/L1/s-b"));
    // So a join of the name on the other instance finds s-b.
    auto r = reserve(sb, "s-c");
    apply(b, 0);
    REQUIRE(r->value);
    CHECK(json::parse(*r->value) == json::parse(session_of("s-b")));
  }
}

TEST_CASE_METHOD(two_instances,
                 "etcd store: an update of a member another instance removed "
                 "fails and writes nothing back",
                 "[cluster][store]") {
  auto update = [](const std::string& session_id) {
    store_change gone{"leave", {image_op{"L1", session_id, nullptr}}};
    store_change back{"join",
                      {image_op{"L1", session_id,
                                std::make_shared<const std::string>(
                                  session_of(session_id)),
                                nullptr, true}}};
    return store_batch{gone, back};
  };
  SECTION("still a member: written") {
    m.put("/vb/lobbies/L1/s-a", "{}");
    auto w = write(sa, update("s-a"));
    REQUIRE(a.etcd->txns.size() == 1);
    auto& t = a.etcd->txns[0].request;
    REQUIRE(t.compares.size() == 2);
    CHECK(t.compares[1].key == "/vb/lobbies/L1/s-a");
    CHECK(t.compares[1].target == etcd::compare_target::version);
    apply(a, 0);
    REQUIRE(w->value);
    CHECK(m.get("/vb/lobbies/L1/s-a")->value == session_of("s-a"));
  }
  SECTION("gone: refused, and not there") {
    auto w = write(sa, update("s-a"));
    apply(a, 0);
    REQUIRE(w->done);
    CHECK(error_code(w->error) == ec::storage_failed);
    CHECK(a.etcd->txns.size() == 1);
    CHECK_FALSE(m.get("/vb/lobbies/L1/s-a"));
  }
}
