// The token bucket (model/token_bucket.hpp) on a made-up clock: what the
// registry's registrations and the front end's per-client quotas rely on.
#include <catch2/catch.hpp>

#include <chrono>

#include "model/token_bucket.hpp"

using namespace vb;
using namespace std::chrono_literals;

namespace {

const token_bucket::time_point t0 = token_bucket::time_point{} + 1000s;

} // namespace

TEST_CASE("token bucket: a new bucket admits its burst at once, then says "
          "how long until the next token", "[token_bucket]") {
  token_bucket b{0.5, 3}; // one token every 2 s, 3 at most
  CHECK(b.full(t0));
  for (int i = 0; i < 3; ++i)
    CHECK_FALSE(b.take(t0));
  auto wait = b.take(t0);
  REQUIRE(wait);
  CHECK(*wait == Approx(2.0));
  CHECK_FALSE(b.full(t0));
  // A refused take takes nothing: the wait only shrinks with time.
  wait = b.take(t0 + 500ms);
  REQUIRE(wait);
  CHECK(*wait == Approx(1.5));
}

TEST_CASE("token bucket: it refills at its rate, never past its burst",
          "[token_bucket]") {
  token_bucket b{1, 2};
  CHECK_FALSE(b.take(t0));
  CHECK_FALSE(b.take(t0));
  CHECK(b.take(t0));
  CHECK_FALSE(b.take(t0 + 1s)); // one token came back
  CHECK(b.take(t0 + 1s));
  // An hour idle is a full bucket: two tokens, not 3600.
  CHECK(b.full(t0 + 1h));
  CHECK_FALSE(b.take(t0 + 1h));
  CHECK_FALSE(b.take(t0 + 1h));
  CHECK(b.take(t0 + 1h));
}

TEST_CASE("token bucket: per minute and per hour quotas", "[token_bucket]") {
  // --max-joins-per-client-per-minute 3: a burst of 3, one more every 20 s.
  token_bucket joins{3.0 / 60, 3};
  for (int i = 0; i < 3; ++i)
    CHECK_FALSE(joins.take(t0));
  auto wait = joins.take(t0);
  REQUIRE(wait);
  CHECK(*wait == Approx(20.0));
  CHECK(joins.take(t0 + 19s));
  CHECK_FALSE(joins.take(t0 + 20s));
  // Full again one minute after the last take: an idle client's bucket.
  CHECK_FALSE(joins.full(t0 + 20s + 59s));
  CHECK(joins.full(t0 + 20s + 60s));
  // 20 lobbies per hour: the 21st waits three minutes.
  token_bucket lobbies{20.0 / 3600, 20};
  for (int i = 0; i < 20; ++i)
    CHECK_FALSE(lobbies.take(t0));
  wait = lobbies.take(t0);
  REQUIRE(wait);
  CHECK(*wait == Approx(180.0));
}

TEST_CASE("token bucket: a clock that goes back refills nothing",
          "[token_bucket]") {
  token_bucket b{1, 1};
  CHECK_FALSE(b.take(t0));
  auto wait = b.take(t0 - 5s);
  REQUIRE(wait);
  CHECK(*wait == Approx(1.0));
}
