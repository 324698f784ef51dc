// A token bucket: `rate` tokens a second up to `burst`, one taken per
// admitted request. Plain C++: the caller passes the time (an actor its
// clock, a test a made-up one), so the same bucket serves the registry's
// registrations (SPEC §7) and the front end's per-client quotas.
#pragma once

#include <chrono>
#include <optional>

namespace vb {

class token_bucket {
public:
  using time_point = std::chrono::steady_clock::time_point;

  /// `rate` tokens per second (> 0); `burst` tokens at most, and at first.
  token_bucket(double rate, double burst);

  /// Takes one token at `now`: nullopt when there was one, else the
  /// seconds until there is (nothing is taken then).
  std::optional<double> take(time_point now);

  /// Whether the bucket holds `burst` tokens again at `now`: a bucket that
  /// is full behaves as a new one, so an idle client's may be dropped.
  bool full(time_point now) const;

private:
  /// Tokens at `now`, counting the refill since the last take.
  double level(time_point now) const;

  double rate_;
  double burst_;
  double tokens_;
  /// When tokens_ was last brought up to date; unset: never used (full).
  std::optional<time_point> refilled_;
};

} // namespace vb
