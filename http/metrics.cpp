#include "http/metrics.hpp"

#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include "http/routes.hpp"

namespace vb {

namespace pm = prometheus;

// -- recording ----------------------------------------------------------------

http_metrics::http_metrics()
  : routes_(route_table().size() + 1),
    slots_(new latency_histogram[routes_ * status_slots]()) {
}

std::size_t http_metrics::status_slot(unsigned status) {
  for (std::size_t i = 0; i < known_statuses.size(); ++i)
    if (known_statuses[i] == status)
      return i;
  auto cls = status / 100;
  if (cls < 1 || cls > 5)
    cls = 5; // not a valid status: counted with the server errors
  return known_statuses.size() + (cls - 1);
}

std::string http_metrics::status_label(std::size_t slot) {
  if (slot < known_statuses.size())
    return std::to_string(known_statuses[slot]);
  return std::to_string(slot - known_statuses.size() + 1) + "xx";
}

void http_metrics::record(int route, unsigned status,
                          std::chrono::nanoseconds took) {
  auto r = route < 0 || static_cast<std::size_t>(route) + 1 >= routes_
             ? routes_ - 1
             : static_cast<std::size_t>(route);
  slots_[r * status_slots + status_slot(status)].observe(took);
}

// -- rendering ----------------------------------------------------------------

namespace {

pm::MetricFamily family(std::string name, std::string help,
                        pm::MetricType type) {
  pm::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

pm::ClientMetric counter(double value,
                         std::vector<pm::ClientMetric::Label> labels = {}) {
  pm::ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  return m;
}

pm::ClientMetric gauge(double value,
                       std::vector<pm::ClientMetric::Label> labels = {}) {
  pm::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  return m;
}

pm::ClientMetric histogram(const latency_histogram& h,
                           std::vector<pm::ClientMetric::Label> labels) {
  pm::ClientMetric m;
  m.label = std::move(labels);
  uint64_t cumulative = 0;
  for (std::size_t i = 0; i < h.buckets.size(); ++i) {
    cumulative += h.buckets[i].load(std::memory_order_relaxed);
    pm::ClientMetric::Bucket b;
    b.cumulative_count = cumulative;
    b.upper_bound = i < latency_histogram::bounds.size()
                      ? latency_histogram::bounds[i]
                      : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(b);
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum
    = static_cast<double>(h.sum_ns.load(std::memory_order_relaxed)) / 1e9;
  return m;
}

double value(const std::atomic<uint64_t>& x) {
  return static_cast<double>(x.load(std::memory_order_relaxed));
}

} // namespace

std::string render_metrics(const http_metrics& http, const server_stats& stats,
                           const provider_counts& providers,
                           double uptime_seconds) {
  std::vector<pm::MetricFamily> out;
  // A family with one unlabelled value.
  auto single = [&out](const char* name, const char* help, pm::MetricType type,
                       double v) {
    auto f = family(name, help, type);
    f.metric.push_back(type == pm::MetricType::Counter ? counter(v) : gauge(v));
    out.push_back(std::move(f));
  };

  auto info = family("voicebot_build_info",
                     "Always 1; the version of the running voicebot-server.",
                     pm::MetricType::Gauge);
  info.metric.push_back(gauge(1, {{"version", VB_VERSION}}));
  out.push_back(std::move(info));

  single("voicebot_uptime_seconds", "Seconds since voicebot-server started.",
         pm::MetricType::Gauge, std::floor(uptime_seconds * 1000) / 1000);

  // -- HTTP --
  auto requests = family("voicebot_http_requests_total",
                         "HTTP requests answered, by route pattern and status "
                         "(route \"unmatched\": no route matched).",
                         pm::MetricType::Counter);
  auto latency = family("voicebot_http_request_duration_seconds",
                        "Time from a request read to its response written, by "
                        "route pattern and status.",
                        pm::MetricType::Histogram);
  auto& table = route_table();
  http.for_each_used_slot([&](const http_metrics::slot_view& s) {
    std::vector<pm::ClientMetric::Label> labels{
      {"method", s.route < 0 ? "other" : table[s.route].method},
      {"route", s.route < 0 ? "unmatched" : table[s.route].pattern},
      {"status", s.status}};
    requests.metric.push_back(
      counter(static_cast<double>(s.histogram->count()), labels));
    latency.metric.push_back(histogram(*s.histogram, std::move(labels)));
  });
  out.push_back(std::move(requests));
  out.push_back(std::move(latency));

  single("voicebot_http_requests_in_flight",
         "HTTP requests read and not yet answered.", pm::MetricType::Gauge,
         static_cast<double>(http.in_flight.load(std::memory_order_relaxed)));
  single("voicebot_http_connections", "Open HTTP connections.",
         pm::MetricType::Gauge,
         static_cast<double>(http.connections.load(std::memory_order_relaxed)));
  single("voicebot_http_connections_refused_total",
         "Connections closed at accept: max_connections were open, or "
         "max_connections_per_address from that address.",
         pm::MetricType::Counter, value(http.refused_connections));
  single("voicebot_http_responses_abandoned_total",
         "Responses not delivered: the client did not take them within "
         "write_timeout, or went away while they were written.",
         pm::MetricType::Counter, value(http.abandoned_responses));

  // -- registry, lobbies, cleanup --
  auto by_status = family("voicebot_providers",
                          "Registered bot providers, by status.",
                          pm::MetricType::Gauge);
  static constexpr const char* statuses[] = {"online", "suspect", "unreachable",
                                             "draining"};
  for (std::size_t i = 0; i < providers.size(); ++i)
    by_status.metric.push_back(
      gauge(static_cast<double>(providers[i]), {{"status", statuses[i]}}));
  out.push_back(std::move(by_status));

  single("voicebot_lobbies", "Lobbies.", pm::MetricType::Gauge,
         value(stats.lobbies));
  single("voicebot_lobby_members", "Members of all lobbies, people and bots.",
         pm::MetricType::Gauge, value(stats.members));
  single("voicebot_provider_evictions_total",
         "Providers evicted by the cleanup actor as stale.",
         pm::MetricType::Counter, value(stats.evictions));
  single("voicebot_cleanup_held_sweeps_total",
         "Cleanup sweeps that evicted nothing because more than "
         "max_evict_fraction of all providers were stale.",
         pm::MetricType::Counter, value(stats.held_sweeps));

  // -- fleet (SPEC §7) --
  single("voicebot_join_failovers_total",
         "Joins tried on a further provider after one could not be reached.",
         pm::MetricType::Counter, value(stats.failovers));
  single("voicebot_redispatches_total",
         "Bot members dispatched again to a new run (evictions, drain "
         "timeouts, lost runs, reconciliation, orphans placed).",
         pm::MetricType::Counter, value(stats.redispatches));
  single("voicebot_orphaned_members",
         "Bot members whose provider was lost and that no provider took yet.",
         pm::MetricType::Gauge, value(stats.orphaned));
  single("voicebot_provider_drains_total", "Provider drains started.",
         pm::MetricType::Counter, value(stats.drains));
  single("voicebot_removed_answers_total",
         "Heartbeats and registrations answered 410: the instance was "
         "removed on purpose.",
         pm::MetricType::Counter, value(stats.removed_answers));
  single("voicebot_registrations_rate_limited_total",
         "Registrations answered 429 by the registration token bucket.",
         pm::MetricType::Counter, value(stats.rate_limited));
  single("voicebot_idempotent_replays_total",
         "Joins answered from an earlier request with the same "
         "Idempotency-Key.",
         pm::MetricType::Counter, value(stats.idempotent_replays));
  single("voicebot_late_acceptances_total",
         "Joins a provider accepted after their dispatch timeout (told to "
         "stop).",
         pm::MetricType::Counter, value(stats.late_acceptances));
  single("voicebot_stray_runs_stopped_total",
         "Runs a provider's heartbeats listed that no bot member held for "
         "the stray grace (a leave or move whose stop failed), stopped.",
         pm::MetricType::Counter, value(stats.stray_stops));
  single("voicebot_caf_tls_handshake_failures_total",
         "Connections to the provider gateway whose mutual TLS handshake "
         "failed (no certificate, another CA's, expired, not TLS), closed.",
         pm::MetricType::Counter, value(stats.tls_handshake_failures));

  // -- snapshots --
  auto writes = family("voicebot_snapshot_writes_total",
                       "Durable snapshot writes, by file.",
                       pm::MetricType::Counter);
  auto failures = family("voicebot_snapshot_write_failures_total",
                         "Snapshot writes that failed, by file.",
                         pm::MetricType::Counter);
  auto durations = family("voicebot_snapshot_write_duration_seconds",
                          "Time to write one snapshot durably (write, fsync, "
                          "rename, fsync of the directory), by file.",
                          pm::MetricType::Histogram);
  for (std::size_t i = 0; i < stats.snapshots.size(); ++i) {
    auto& s = stats.snapshots[i];
    std::string file{server_stats::snapshot_files[i]};
    auto last = i + 1 == stats.snapshots.size();
    if (last && s.writes.load() == 0 && s.failures.load() == 0)
      continue; // "other" only when some other file was written
    writes.metric.push_back(counter(value(s.writes), {{"file", file}}));
    failures.metric.push_back(counter(value(s.failures), {{"file", file}}));
    durations.metric.push_back(histogram(s.duration, {{"file", file}}));
  }
  out.push_back(std::move(writes));
  out.push_back(std::move(failures));
  out.push_back(std::move(durations));

  // -- journals (SPEC §3) --
  auto jfamily = [&](const char* name, const char* help, pm::MetricType type) {
    return family(name, help, type);
  };
  auto appends = jfamily("voicebot_journal_appends_total",
                         "Journal appends (one write and one fdatasync each), "
                         "by file.", pm::MetricType::Counter);
  auto records = jfamily("voicebot_journal_records_total",
                         "Records in those appends, by file: records per "
                         "batch is this over appends.", pm::MetricType::Counter);
  auto append_failures = jfamily("voicebot_journal_append_failures_total",
                                 "Journal appends that failed (their changes "
                                 "answered 503 storage_failed), by file.",
                                 pm::MetricType::Counter);
  auto syncs = jfamily("voicebot_journal_append_duration_seconds",
                       "Time of one journal append (write and fdatasync), by "
                       "file.", pm::MetricType::Histogram);
  auto bytes = jfamily("voicebot_journal_bytes",
                       "Size of the journal being appended to, by file.",
                       pm::MetricType::Gauge);
  auto compactions = jfamily("voicebot_journal_compactions_total",
                             "Journals compacted into a new snapshot, by file.",
                             pm::MetricType::Counter);
  auto compaction_failures = jfamily(
    "voicebot_journal_compaction_failures_total",
    "Compactions that failed (retried), by file.", pm::MetricType::Counter);
  auto compaction_time = jfamily("voicebot_journal_compaction_duration_seconds",
                                 "Time of one compaction (snapshot and journal "
                                 "rotation), by file.",
                                 pm::MetricType::Histogram);
  auto quarantined = jfamily("voicebot_quarantined_files_total",
                             "Corrupt files moved aside at start-up, by file "
                             "and kind (journal, snapshot).",
                             pm::MetricType::Counter);
  auto torn = jfamily("voicebot_journal_torn_tails_total",
                      "Torn last records cut off at start-up, by file.",
                      pm::MetricType::Counter);
  for (std::size_t i = 0; i + 1 < stats.journals.size(); ++i) {
    auto& j = stats.journals[i];
    std::string file{server_stats::snapshot_files[i]};
    pm::ClientMetric::Label l{"file", file};
    appends.metric.push_back(counter(value(j.appends), {l}));
    records.metric.push_back(counter(value(j.records), {l}));
    append_failures.metric.push_back(counter(value(j.failures), {l}));
    syncs.metric.push_back(histogram(j.sync, {l}));
    pm::ClientMetric g;
    g.label = {l};
    g.gauge.value = static_cast<double>(j.bytes.load(std::memory_order_relaxed));
    bytes.metric.push_back(g);
    compactions.metric.push_back(counter(value(j.compactions), {l}));
    compaction_failures.metric.push_back(counter(value(j.compaction_failures), {l}));
    compaction_time.metric.push_back(histogram(j.compaction, {l}));
    quarantined.metric.push_back(
      counter(value(j.quarantined), {l, pm::ClientMetric::Label{"kind", "journal"}}));
    torn.metric.push_back(counter(value(j.truncated), {l}));
  }
  quarantined.metric.push_back(
    counter(value(stats.quarantined_snapshots),
            {pm::ClientMetric::Label{"file", "any"},
             pm::ClientMetric::Label{"kind", "snapshot"}}));
  for (auto* f : {&appends, &records, &append_failures, &syncs, &bytes,
                  &compactions, &compaction_failures, &compaction_time,
                  &quarantined, &torn})
    out.push_back(std::move(*f));

  std::ostringstream text;
  pm::TextSerializer{}.Serialize(text, out);
  return text.str();
}

} // namespace vb
