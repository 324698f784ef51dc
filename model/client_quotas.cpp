#include "model/client_quotas.hpp"

#include <algorithm>
#include <vector>

namespace vb {

namespace {

constexpr std::size_t min_prune_size = 1024;

} // namespace

const char* to_string(quota q) {
  switch (q) {
    case quota::joins: return "joins";
    case quota::lobbies: return "lobbies";
  }
  return "unknown";
}

client_quotas::client_quotas(quota_limits limits)
  : limits_(limits),
    next_prune_(std::min(std::max<std::size_t>(limits.max_clients, 1),
                         min_prune_size)) {
}

bool client_quotas::enabled(quota q) const {
  return (q == quota::joins ? limits_.joins_per_minute
                            : limits_.lobbies_per_hour)
         > 0;
}

token_bucket& client_quotas::bucket(buckets& b, quota q) {
  // A burst of the whole quota; refilled evenly over its period.
  if (q == quota::joins) {
    if (!b.joins) {
      auto n = static_cast<double>(limits_.joins_per_minute);
      b.joins.emplace(n / 60, n);
    }
    return *b.joins;
  }
  if (!b.lobbies) {
    auto n = static_cast<double>(limits_.lobbies_per_hour);
    b.lobbies.emplace(n / 3600, n);
  }
  return *b.lobbies;
}

std::optional<double> client_quotas::take(quota q, const std::string& client,
                                          time_point now) {
  if (!enabled(q))
    return std::nullopt;
  if (clients_.size() >= next_prune_ && clients_.count(client) == 0)
    prune(now);
  auto& b = clients_[client];
  b.last = now;
  return bucket(b, q).take(now);
}

void client_quotas::prune(time_point now) {
  auto idle = [now](const buckets& b) {
    return (!b.joins || b.joins->full(now))
           && (!b.lobbies || b.lobbies->full(now));
  };
  for (auto i = clients_.begin(); i != clients_.end();)
    i = idle(i->second) ? clients_.erase(i) : std::next(i);
  auto cap = std::max<std::size_t>(limits_.max_clients, 1);
  if (clients_.size() >= cap) {
    // Busy clients all: forget the least recently seen quarter (they get a
    // fresh bucket back, which only errs towards admitting), leaving room
    // for the one coming in.
    auto keep = cap - cap / 4 - 1;
    std::vector<time_point> seen;
    seen.reserve(clients_.size());
    for (auto& entry : clients_)
      seen.push_back(entry.second.last);
    auto oldest_kept = time_point::max();
    if (keep > 0) {
      auto cut = seen.begin()
                 + static_cast<std::ptrdiff_t>(seen.size() - keep);
      std::nth_element(seen.begin(), cut, seen.end());
      oldest_kept = *cut;
    }
    for (auto i = clients_.begin(); i != clients_.end();)
      i = i->second.last < oldest_kept ? clients_.erase(i) : std::next(i);
    // Ties at the cut (a clock that did not move): by count.
    for (auto i = clients_.begin(); clients_.size() > keep;)
      i = clients_.erase(i);
  }
  next_prune_ = std::min(std::max(min_prune_size, 2 * clients_.size()), cap);
}

} // namespace vb
