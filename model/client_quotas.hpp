// Per-client quotas (docs/security.md, "Quotas"): a token bucket per client
// and quota (bot joins a minute, lobbies created an hour), keyed by the
// client's address, or by an access token's subject. Plain C++ with the
// time passed in; its owner keeps it on one strand (http/quota_keeper.cpp),
// so nothing here locks. Idle clients' buckets are dropped: memory stays
// bounded however many addresses come and go.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <unordered_map>

#include "model/token_bucket.hpp"

namespace vb {

enum class quota {
  joins,   // bot joins a minute (--max-joins-per-client-per-minute)
  lobbies, // lobbies created an hour (--max-lobbies-per-client-per-hour)
};

/// "joins", "lobbies": the metric's label.
const char* to_string(quota q);

struct quota_limits {
  /// Per minute and per hour; 0: no quota.
  std::size_t joins_per_minute = 60;
  std::size_t lobbies_per_hour = 20;
  /// Clients tracked at most; past it the least recently seen are
  /// forgotten (a fresh bucket if they come back).
  std::size_t max_clients = 100000;
};

class client_quotas {
public:
  using time_point = token_bucket::time_point;

  explicit client_quotas(quota_limits limits);

  /// Whether `q` is limited at all.
  bool enabled(quota q) const;

  /// Takes one of `client`'s `q` at `now`: nullopt when admitted, else the
  /// seconds until it would be.
  std::optional<double> take(quota q, const std::string& client,
                             time_point now);

  /// Clients with a bucket now.
  std::size_t clients() const {
    return clients_.size();
  }

private:
  struct buckets {
    std::optional<token_bucket> joins;
    std::optional<token_bucket> lobbies;
    time_point last;
  };

  token_bucket& bucket(buckets& b, quota q);
  /// Drops the buckets that are full again (an idle client's), then, past
  /// max_clients, the least recently seen.
  void prune(time_point now);

  quota_limits limits_;
  std::unordered_map<std::string, buckets> clients_;
  /// The size at which the next prune runs: doubling keeps it amortized
  /// O(1) a take.
  std::size_t next_prune_;
};

} // namespace vb
