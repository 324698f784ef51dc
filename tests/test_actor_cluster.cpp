// Cluster mode's actors (actors/cluster): the key codec, and the etcd store
// and membership of two instances against a real etcd member (skipped with
// a warning when Debian's etcd-server is not installed): a commit of one is
// handed to the other's owner and never back to its own; a store without a
// live lease commits nothing; the sweeper is one instance.
#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <thread>

#include <caf/all.hpp>

#include "cluster/cluster.hpp"
#include "actors/stats.hpp"
#include "etcd/etcd_client.hpp"
#include "etcd_member.hpp"

using namespace vb;

TEST_CASE("cluster keys are the owner's prefix and the escaped parent and key",
          "[cluster]") {
  const std::string p = "/vb/lobbies/";
  CHECK(cluster_key(p, "", "L1") == "/vb/lobbies/L1");
  CHECK(cluster_key(p, "L1", "s-1") == "/vb/lobbies/L1/s-1");
  CHECK(cluster_key(p, "a/b", "x%y z") == "/vb/lobbies/a%2Fb/x%25y%20z");
  std::string parent, key;
  REQUIRE(split_cluster_key(p, "/vb/lobbies/a%2Fb/x%25y%20z", parent, key));
  CHECK(parent == "a/b");
  CHECK(key == "x%y z");
  REQUIRE(split_cluster_key(p, "/vb/lobbies/L1", parent, key));
  CHECK(parent.empty());
  CHECK(key == "L1");
  // Not an entry of this owner: another prefix, too deep, bad escapes.
  CHECK_FALSE(split_cluster_key(p, "/vb/providers/p1", parent, key));
  CHECK_FALSE(split_cluster_key(p, "/vb/lobbies/a/b/c", parent, key));
  CHECK_FALSE(split_cluster_key(p, "/vb/lobbies/%4", parent, key));
  CHECK_FALSE(split_cluster_key(p, "/vb/lobbies/%zz", parent, key));
  CHECK_FALSE(split_cluster_key(p, "/vb/lobbies/", parent, key));
  // Every byte survives the round trip.
  std::string all;
  for (int c = 1; c < 256; ++c)
    all += static_cast<char>(c);
  REQUIRE(split_cluster_key(p, cluster_key(p, all, all), parent, key));
  CHECK(parent == all);
  CHECK(key == all);
  CHECK(cluster_owner("bot_providers.json") == "providers");
  CHECK(cluster_owner("lobbies.json") == "lobbies");
  CHECK(cluster_owner("idempotency.json") == "idempotency");
}

namespace {

struct real_config : caf::actor_system_config {
  real_config() {
    set("logger.verbosity", caf::atom("quiet"));
    vb::add_message_types(*this);
    vb::add_cluster_types(*this);
  }
};

/// One instance: its context, membership and a providers store.
struct instance {
  std::shared_ptr<cluster_context> ctx = std::make_shared<cluster_context>();
  std::shared_ptr<server_stats> stats = std::make_shared<server_stats>();
  membership_actor membership;
  etcd_store_handles store;

  instance(caf::actor_system& sys, const std::string& url,
           const std::string& id) {
    etcd::etcd_options o;
    o.endpoints = {url};
    ctx->client = std::make_shared<etcd::etcd_client>(o);
    ctx->prefix = "/t/";
    ctx->instance_id = id;
    ctx->ttl = std::chrono::seconds(3);
    membership = spawn_membership(sys, ctx, stats, "{}");
  }
};

/// A scoped actor stands for a store's owner (what it hears is checked).
void own(const etcd_store_handles& store, caf::scoped_actor& owner) {
  caf::anon_send(store.owner, atom::peers_v,
                 caf::actor_cast<remote_owner_actor>(owner));
}

store_batch put_provider(const std::string& id, const std::string& json) {
  return {store_change{"record",
                       {image_op{{}, id, std::make_shared<const std::string>(json)}}}};
}

} // namespace

TEST_CASE("two instances share one etcd: commits, remote changes, fencing",
          "[cluster][etcd]") {
  auto binary = test::find_etcd();
  if (binary.empty()) {
    WARN("etcd is not installed (Debian's etcd-server): skipped");
    return;
  }
  test::etcd_member member{binary};
  real_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  instance a{sys, member.url(), "a"};
  instance b{sys, member.url(), "b"};
  // Both go live (etcd needs a moment to start: the keeper retries).
  for (auto* i : {&a, &b})
    self->request(i->membership, std::chrono::seconds(30), atom::get_v)
      .receive([](int64_t lease) { CHECK(lease != 0); },
               [](caf::error& err) { FAIL("no lease: " << to_string(err)); });
  a.store = spawn_etcd_store(sys, a.ctx, "providers", 0, a.stats);
  b.store = spawn_etcd_store(sys, b.ctx, "providers", 0, b.stats);
  // Each store's owner is a scoped actor here.
  caf::scoped_actor owner_a{sys};
  caf::scoped_actor owner_b{sys};
  own(a.store, owner_a);
  own(b.store, owner_b);
  // Let both watches be created before the first commit.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  uint64_t rev = 0;
  self->request(a.store.store, std::chrono::seconds(10), atom::write_v,
                put_provider("p1", R"({"provider_id":"p1"})"))
    .receive([&](uint64_t r) { rev = r; },
             [](caf::error& err) { FAIL("commit failed: " << to_string(err)); });
  CHECK(rev > 0);
  CHECK(a.stats->cluster_commits == 1);

  // B's owner hears of it; A's owner does not (its own write).
  owner_b->receive(
    [&](atom::remote, remote_batch& batch) {
      REQUIRE(batch.changes.size() == 1);
      CHECK(batch.changes[0].key == "p1");
      CHECK(batch.changes[0].parent.empty());
      REQUIRE(batch.changes[0].json);
      CHECK(*batch.changes[0].json == R"({"provider_id":"p1"})");
      CHECK_FALSE(batch.resync);
    },
    caf::after(std::chrono::seconds(5)) >> [] { FAIL("no remote change on B"); });
  // B removes it: A's owner hears the removal, the first thing it hears.
  self->request(b.store.store, std::chrono::seconds(10), atom::write_v,
                store_batch{store_change{"record", {image_op{{}, "p1", nullptr}}}})
    .receive([](uint64_t) {},
             [](caf::error& err) { FAIL("commit failed: " << to_string(err)); });
  owner_a->receive(
    [&](atom::remote, remote_batch& batch) {
      REQUIRE(batch.changes.size() == 1);
      CHECK(batch.changes[0].key == "p1");
      CHECK_FALSE(batch.changes[0].json);
    },
    caf::after(std::chrono::seconds(5)) >> [] { FAIL("no remote removal on A"); });
  owner_b->receive([](atom::remote, remote_batch&) { FAIL("B heard its own write"); },
                   caf::after(std::chrono::milliseconds(300)) >> [] {});

  // A store whose watch starts before a compaction resyncs: its owner gets
  // the whole state at once (every entry, `resync` set).
  self->request(a.store.store, std::chrono::seconds(10), atom::write_v,
                put_provider("p4", R"({"provider_id":"p4"})"))
    .receive([&](uint64_t r) { rev = r; },
             [](caf::error& err) { FAIL("commit failed: " << to_string(err)); });
  owner_b->receive([](atom::remote, remote_batch&) {},
                   caf::after(std::chrono::seconds(5)) >> [] { FAIL("no p4 on B"); });
  {
    std::promise<etcd::put_result> done;
    a.ctx->client->compact(static_cast<int64_t>(rev), std::chrono::seconds(5),
                           [&](etcd::put_result r) { done.set_value(std::move(r)); });
    REQUIRE_FALSE(done.get_future().get().error);
  }
  auto late = spawn_etcd_store(sys, b.ctx, "providers", 1, b.stats);
  caf::scoped_actor late_owner{sys};
  own(late, late_owner);
  late_owner->receive(
    [&](atom::remote, remote_batch& batch) {
      CHECK(batch.resync);
      REQUIRE(batch.changes.size() == 1);
      CHECK(batch.changes[0].key == "p4");
    },
    caf::after(std::chrono::seconds(10)) >> [] { FAIL("no resync after a compaction"); });
  self->send_exit(late.store, caf::exit_reason::user_shutdown);

  // One sweeper of the two.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!(a.stats->sweeper || b.stats->sweeper)
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(a.stats->sweeper != b.stats->sweeper);

  // A stops: its lease is revoked, so its store commits nothing more.
  auto old_lease = a.ctx->lease.load();
  self->send_exit(a.membership, caf::exit_reason::user_shutdown);
  self->wait_for(a.membership);
  // The stop revokes the lease (asynchronously): A's key goes with it.
  auto instance_keys = [&] {
    std::promise<etcd::range_result> got;
    etcd::range_request r;
    r.key = "/t/instances/";
    r.prefix = true;
    b.ctx->client->range(r, std::chrono::seconds(5),
                         [&](etcd::range_result res) { got.set_value(std::move(res)); });
    return got.get_future().get().kvs.size();
  };
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((a.ctx->lease != 0 || instance_keys() != 1)
         && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(a.ctx->lease == 0);
  CHECK(instance_keys() == 1);
  self->request(a.store.store, std::chrono::seconds(10), atom::write_v,
                put_provider("p2", "{}"))
    .receive([](uint64_t) { FAIL("a commit without a live lease"); },
             [](caf::error& err) { CHECK(code_of(err) == ec::storage_failed); });
  CHECK(a.stats->cluster_failures == 1);
  // A zombie that still believes in its old lease is refused by etcd: the
  // instance key no longer holds that lease (the fence of every commit).
  a.ctx->lease = old_lease;
  self->request(a.store.store, std::chrono::seconds(10), atom::write_v,
                put_provider("p3", "{}"))
    .receive([](uint64_t) { FAIL("a zombie's commit went through"); },
             [](caf::error& err) { CHECK(code_of(err) == ec::storage_failed); });
  a.ctx->lease = 0;
  {
    // Nothing of A's refused commits is in etcd.
    std::promise<etcd::range_result> got;
    etcd::range_request r;
    r.key = "/t/providers/";
    r.prefix = true;
    b.ctx->client->range(r, std::chrono::seconds(5),
                         [&](etcd::range_result res) { got.set_value(std::move(res)); });
    auto res = got.get_future().get();
    REQUIRE_FALSE(res.error);
    REQUIRE(res.kvs.size() == 1); // p4 only
    CHECK(res.kvs[0].key == "/t/providers/p4");
  }
  // B takes the sweeper once A's key is gone.
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!b.stats->sweeper && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(b.stats->sweeper);
  for (auto& s : {a.store.store, b.store.store})
    self->send_exit(s, caf::exit_reason::user_shutdown);
  self->send_exit(b.membership, caf::exit_reason::user_shutdown);
}
