// /metrics: what the front end records per request, and the Prometheus text
// rendering of it and of the actors' counters (actors/stats.hpp).
//
// Recording is lock-free (relaxed atomic adds into fixed slots); prometheus-
// cpp's Registry and Histogram, whose Observe takes a mutex, are not used on
// the request path. At scrape time the slots become prometheus::MetricFamily
// values and prometheus::TextSerializer writes them. No Beast, no CAF here.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "actors/stats.hpp"
#include "model/access_token.hpp"
#include "model/client_quotas.hpp"

namespace vb {

/// Providers by status (index: vb::provider_status), counted at scrape time.
using provider_counts = std::array<uint64_t, 4>;

class http_metrics {
public:
  /// Status codes with a slot of their own; any other code counts under its
  /// class ("1xx" to "5xx").
  static constexpr std::array<unsigned, 24> known_statuses{
    101, 200, 201, 204, 304, 308, 400, 401, 403, 404, 405, 408,
    409, 413, 415, 422, 426, 429, 431, 500, 501, 502, 503, 504};

  /// One slot per route of route_table(), plus one for requests that match
  /// no route (unknown paths, wrong methods, unreadable requests).
  http_metrics();

  /// Records one answered request. `route` is the route's index in
  /// route_table(), or -1 when it matched none.
  void record(int route, unsigned status, std::chrono::nanoseconds took);

  /// Requests read and not yet answered, and open connections (gauges; the
  /// front end also uses them to drain at shutdown).
  std::atomic<std::size_t> in_flight{0};
  std::atomic<std::size_t> connections{0};
  /// Of those, lobby WebSockets: a shutdown does not wait for them (they
  /// live until the page leaves; pages reconnect to the next server).
  std::atomic<std::size_t> sockets{0};
  /// Connections refused at the cap.
  std::atomic<uint64_t> refused_connections{0};
  /// Responses not delivered: the client stopped reading (write_timeout)
  /// or went away while the response was being written. Not counted as
  /// answered.
  std::atomic<uint64_t> abandoned_responses{0};

  /// Requests (and WebSocket hellos and chat lines) refused for their
  /// frontend access token, by access_error; requests answered 429 by a
  /// per-client quota, by quota (docs/security.md). Counted from the API,
  /// which holds these metrics const: relaxed atomic adds, hence mutable.
  mutable std::array<std::atomic<uint64_t>, 5> access_refusals{};
  mutable std::array<std::atomic<uint64_t>, 2> quota_refusals{};
  void refused(access_error e) const {
    access_refusals[static_cast<std::size_t>(e)].fetch_add(
      1, std::memory_order_relaxed);
  }
  void refused(quota q) const {
    quota_refusals[static_cast<std::size_t>(q)].fetch_add(
      1, std::memory_order_relaxed);
  }

  /// The request families (voicebot_http_*), read by render_metrics.
  struct slot_view {
    int route;            // -1: unmatched
    std::string status;   // "200", "4xx"
    const latency_histogram* histogram;
  };
  template <class F>
  void for_each_used_slot(F f) const;

private:
  static constexpr std::size_t status_slots = known_statuses.size() + 5;
  static std::size_t status_slot(unsigned status);
  static std::string status_label(std::size_t slot);

  std::size_t routes_; // route_table().size() + 1
  std::unique_ptr<latency_histogram[]> slots_;
};

template <class F>
void http_metrics::for_each_used_slot(F f) const {
  for (std::size_t r = 0; r < routes_; ++r)
    for (std::size_t s = 0; s < status_slots; ++s) {
      auto& h = slots_[r * status_slots + s];
      if (h.count() == 0)
        continue;
      auto route = r + 1 == routes_ ? -1 : static_cast<int>(r);
      f(slot_view{route, status_label(s), &h});
    }
}

/// Everything /metrics reports, in Prometheus text format 0.0.4.
std::string render_metrics(const http_metrics& http, const server_stats& stats,
                           const provider_counts& providers,
                           double uptime_seconds);

/// The Content-Type of render_metrics' text.
inline constexpr const char* metrics_content_type
  = "text/plain; version=0.0.4; charset=utf-8";

} // namespace vb
