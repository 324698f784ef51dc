// Per-client quotas (model/client_quotas.hpp): a bucket per client and
// quota, 0 for none, and a bounded number of clients tracked.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "model/client_quotas.hpp"

using namespace vb;
using namespace std::chrono_literals;

namespace {

const client_quotas::time_point t0 = client_quotas::time_point{} + 1000s;

} // namespace

TEST_CASE("quotas: each client has its own joins and lobbies; the quota past "
          "its burst says how long to wait", "[quotas]") {
  client_quotas q{{3, 2}};
  for (int i = 0; i < 3; ++i)
    CHECK_FALSE(q.take(quota::joins, "ip:127.0.0.1", t0));
  auto wait = q.take(quota::joins, "ip:127.0.0.1", t0);
  REQUIRE(wait);
  CHECK(*wait == Approx(20.0));
  // Another client, and another quota of the same client, are untouched.
  CHECK_FALSE(q.take(quota::joins, "ip:127.0.0.2", t0));
  CHECK_FALSE(q.take(quota::joins, "sub:alice", t0));
  CHECK_FALSE(q.take(quota::lobbies, "ip:127.0.0.1", t0));
  CHECK_FALSE(q.take(quota::lobbies, "ip:127.0.0.1", t0));
  wait = q.take(quota::lobbies, "ip:127.0.0.1", t0);
  REQUIRE(wait);
  CHECK(*wait == Approx(1800.0));
  CHECK_FALSE(q.take(quota::joins, "ip:127.0.0.1", t0 + 20s));
}

TEST_CASE("quotas: 0 is no quota", "[quotas]") {
  client_quotas q{{0, 0}};
  CHECK_FALSE(q.enabled(quota::joins));
  CHECK_FALSE(q.enabled(quota::lobbies));
  for (int i = 0; i < 1000; ++i)
    CHECK_FALSE(q.take(quota::joins, "ip:127.0.0.1", t0));
  CHECK(q.clients() == 0);
}

TEST_CASE("quotas: idle clients' buckets are dropped, and no more than "
          "max_clients are kept however many come", "[quotas]") {
  quota_limits limits{60, 20, 2000};
  client_quotas q{limits};
  // A crowd of one-off clients, each gone idle a minute later.
  for (int i = 0; i < 5000; ++i)
    q.take(quota::joins, "ip:c" + std::to_string(i), t0);
  CHECK(q.clients() <= 2000);
  for (int i = 0; i < 100; ++i)
    q.take(quota::joins, "ip:d" + std::to_string(i), t0 + 2min);
  for (int i = 0; i < 2000; ++i)
    q.take(quota::joins, "ip:e" + std::to_string(i), t0 + 2min);
  CHECK(q.clients() <= 2000);
  // A prune drops the idle, not a client still waiting for its tokens.
  client_quotas big{{60, 20, 100000}};
  for (int i = 0; i < 1000; ++i)
    big.take(quota::joins, "ip:h" + std::to_string(i), t0);
  auto later = t0 + 61s; // those 1000 are full again: idle
  for (int i = 0; i < 60; ++i)
    CHECK_FALSE(big.take(quota::joins, "ip:busy", later));
  for (int i = 0; i < 100; ++i) // past 1024 clients: a prune
    big.take(quota::joins, "ip:k" + std::to_string(i), later);
  CHECK(big.clients() < 1024);
  CHECK(big.take(quota::joins, "ip:busy", later)); // still limited
  // All busy at one instant: still bounded.
  client_quotas tight{{60, 20, 4}};
  for (int i = 0; i < 50; ++i)
    tight.take(quota::joins, "ip:g" + std::to_string(i), t0);
  CHECK(tight.clients() <= 4);
}
