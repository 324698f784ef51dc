#include "http/metrics.hpp"

#include <cmath>
#include <iterator>
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

using labels = std::vector<pm::ClientMetric::Label>;

/// What one scrape reads, the parts several families share taken once so
/// that those families agree.
struct scrape {
  const http_metrics& http;
  const server_stats& stats;
  const provider_counts& providers;
  double uptime_seconds;
  std::vector<http_metrics::slot_view> slots; // request slots in use
  std::size_t snapshot_files;                 // "other" only when written
};

template <class T>
double value(const std::atomic<T>& x) {
  return static_cast<double>(x.load(std::memory_order_relaxed));
}

/// A sample of `f`, a counter or a gauge as its type says.
pm::ClientMetric sample(const pm::MetricFamily& f, double v, labels l = {}) {
  pm::ClientMetric m;
  m.label = std::move(l);
  if (f.type == pm::MetricType::Counter)
    m.counter.value = v;
  else
    m.gauge.value = v;
  return m;
}

template <class T>
pm::ClientMetric sample(const pm::MetricFamily& f, const std::atomic<T>& x,
                        labels l = {}) {
  return sample(f, value(x), std::move(l));
}

pm::ClientMetric sample(const pm::MetricFamily&, const latency_histogram& h,
                        labels l) {
  pm::ClientMetric m;
  m.label = std::move(l);
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

// -- readers: each adds the samples of one family -----------------------------

void build_info(pm::MetricFamily& f, const scrape&) {
  f.metric.push_back(sample(f, 1, {{"version", VB_VERSION}}));
}

void uptime(pm::MetricFamily& f, const scrape& s) {
  f.metric.push_back(sample(f, std::floor(s.uptime_seconds * 1000) / 1000));
}

labels request_labels(const http_metrics::slot_view& slot) {
  auto& table = route_table();
  return {{"method", slot.route < 0 ? "other" : table[slot.route].method},
          {"route", slot.route < 0 ? "unmatched" : table[slot.route].pattern},
          {"status", slot.status}};
}

void requests(pm::MetricFamily& f, const scrape& s) {
  for (auto& slot : s.slots)
    f.metric.push_back(sample(f, static_cast<double>(slot.histogram->count()),
                              request_labels(slot)));
}

void request_durations(pm::MetricFamily& f, const scrape& s) {
  for (auto& slot : s.slots)
    f.metric.push_back(sample(f, *slot.histogram, request_labels(slot)));
}

template <auto member>
void of_http(pm::MetricFamily& f, const scrape& s) {
  f.metric.push_back(sample(f, s.http.*member));
}

void providers_by_status(pm::MetricFamily& f, const scrape& s) {
  static constexpr const char* statuses[] = {"online", "suspect", "unreachable",
                                             "draining"};
  for (std::size_t i = 0; i < s.providers.size(); ++i)
    f.metric.push_back(sample(f, static_cast<double>(s.providers[i]),
                              {{"status", statuses[i]}}));
}

template <auto member>
void of_stats(pm::MetricFamily& f, const scrape& s) {
  f.metric.push_back(sample(f, s.stats.*member));
}

void access_refused(pm::MetricFamily& f, const scrape& s) {
  for (auto e : {access_error::missing, access_error::invalid,
                 access_error::expired, access_error::forbidden})
    f.metric.push_back(
      sample(f, s.http.access_refusals[static_cast<std::size_t>(e)],
             {{"code", to_string(e)}}));
}

void quota_refused(pm::MetricFamily& f, const scrape& s) {
  for (auto q : {quota::joins, quota::lobbies})
    f.metric.push_back(
      sample(f, s.http.quota_refusals[static_cast<std::size_t>(q)],
             {{"quota", to_string(q)}}));
}

void hellos_refused(pm::MetricFamily& f, const scrape& s) {
  f.metric.push_back(sample(f, s.stats.hellos_bad_token, {{"code", "bad_token"}}));
  f.metric.push_back(
    sample(f, s.stats.hellos_voice_full, {{"code", "voice_full"}}));
}

pm::ClientMetric::Label file_label(std::size_t i) {
  return {"file", std::string{server_stats::snapshot_files[i]}};
}

/// One sample per file, read from each file's `Stats`.
template <class Stats, std::size_t N, class Member>
void per_file(pm::MetricFamily& f, const std::array<Stats, N>& all,
              std::size_t files, Member Stats::*member) {
  for (std::size_t i = 0; i < files; ++i)
    f.metric.push_back(sample(f, all[i].*member, {file_label(i)}));
}

template <auto member>
void per_snapshot(pm::MetricFamily& f, const scrape& s) {
  per_file(f, s.stats.snapshots, s.snapshot_files, member);
}

/// The named files only: "other" has no journal.
template <auto member>
void per_journal(pm::MetricFamily& f, const scrape& s) {
  per_file(f, s.stats.journals, s.stats.journals.size() - 1, member);
}

/// Journals by file; snapshot files are counted together, as "any".
void quarantined(pm::MetricFamily& f, const scrape& s) {
  for (std::size_t i = 0; i + 1 < s.stats.journals.size(); ++i)
    f.metric.push_back(sample(f, s.stats.journals[i].quarantined,
                              {file_label(i), {"kind", "journal"}}));
  f.metric.push_back(sample(f, s.stats.quarantined_snapshots,
                            {{"file", "any"}, {"kind", "snapshot"}}));
}

/// One family of /metrics: what it says of itself, and its reader.
struct family_row {
  const char* name;
  const char* help;
  pm::MetricType type;
  void (*read)(pm::MetricFamily&, const scrape&);
};

constexpr auto counter = pm::MetricType::Counter;
constexpr auto gauge = pm::MetricType::Gauge;
constexpr auto histogram = pm::MetricType::Histogram;

/// Every family, in the order /metrics lists them.
const family_row families[] = {
  {"voicebot_build_info",
   "Always 1; the version of the running voicebot-server.", gauge, build_info},
  {"voicebot_uptime_seconds", "Seconds since voicebot-server started.", gauge,
   uptime},

  // -- HTTP --
  {"voicebot_http_requests_total",
   "HTTP requests answered, by route pattern and status (route \"unmatched\": "
   "no route matched).",
   counter, requests},
  {"voicebot_http_request_duration_seconds",
   "Time from a request read to its response written, by route pattern and "
   "status.",
   histogram, request_durations},
  {"voicebot_http_requests_in_flight",
   "HTTP requests read and not yet answered.", gauge,
   of_http<&http_metrics::in_flight>},
  {"voicebot_http_connections", "Open HTTP connections.", gauge,
   of_http<&http_metrics::connections>},
  {"voicebot_http_connections_refused_total",
   "Connections closed at accept: max_connections were open, or "
   "max_connections_per_address from that address.",
   counter, of_http<&http_metrics::refused_connections>},
  {"voicebot_http_responses_abandoned_total",
   "Responses not delivered: the client did not take them within "
   "write_timeout, or went away while they were written.",
   counter, of_http<&http_metrics::abandoned_responses>},
  {"voicebot_access_refused_total",
   "Requests, and lobby WebSocket hellos and chat lines, refused for their "
   "frontend access token, by code: access_token_missing, access_token_invalid, "
   "access_token_expired (401), access_forbidden (403).",
   counter, access_refused},
  {"voicebot_quota_refused_total",
   "Requests answered 429 rate_limited by a per-client quota, by quota: "
   "joins (a minute), lobbies (created an hour).",
   counter, quota_refused},

  // -- registry, lobbies, cleanup --
  {"voicebot_providers", "Registered bot providers, by status.", gauge,
   providers_by_status},
  {"voicebot_lobbies", "Lobbies.", gauge, of_stats<&server_stats::lobbies>},
  {"voicebot_lobby_members", "Members of all lobbies, people and bots.", gauge,
   of_stats<&server_stats::members>},
  {"voicebot_provider_evictions_total",
   "Providers evicted by the cleanup actor as stale.", counter,
   of_stats<&server_stats::evictions>},
  {"voicebot_cleanup_held_sweeps_total",
   "Cleanup sweeps that evicted nothing because more than "
   "max_evict_fraction of all providers were stale.",
   counter, of_stats<&server_stats::held_sweeps>},

  // -- fleet (SPEC §7) --
  {"voicebot_join_failovers_total",
   "Joins tried on a further provider after one could not be reached.",
   counter, of_stats<&server_stats::failovers>},
  {"voicebot_redispatches_total",
   "Bot members dispatched again to a new run (evictions, drain timeouts, "
   "lost runs, reconciliation, orphans placed).",
   counter, of_stats<&server_stats::redispatches>},
  {"voicebot_orphaned_members",
   "Bot members whose provider was lost and that no provider took yet.", gauge,
   of_stats<&server_stats::orphaned>},
  {"voicebot_provider_drains_total", "Provider drains started.", counter,
   of_stats<&server_stats::drains>},
  {"voicebot_removed_answers_total",
   "Heartbeats and registrations answered 410: the instance was removed on "
   "purpose.",
   counter, of_stats<&server_stats::removed_answers>},
  {"voicebot_registrations_rate_limited_total",
   "Registrations answered 429 by the registration token bucket.", counter,
   of_stats<&server_stats::rate_limited>},
  {"voicebot_idempotent_replays_total",
   "Joins answered from an earlier request with the same Idempotency-Key.",
   counter, of_stats<&server_stats::idempotent_replays>},

  {"voicebot_late_acceptances_total",
   "Joins a provider accepted after their dispatch timeout (told to stop).",
   counter, of_stats<&server_stats::late_acceptances>},
  {"voicebot_stray_runs_stopped_total",
   "Runs a provider's heartbeats listed that no bot member held for the "
   "stray grace (a leave or move whose stop failed), stopped.",
   counter, of_stats<&server_stats::stray_stops>},
  {"voicebot_empty_lobby_bots_stopped_total",
   "Bot members that left (their runs stopped) when their lobby had had no "
   "people for --empty-lobby-grace.",
   counter, of_stats<&server_stats::empty_lobby_stops>},
  {"voicebot_caf_tls_handshake_failures_total",
   "Connections to the provider gateway whose mutual TLS handshake failed "
   "(no certificate, another CA's, expired, not TLS), closed.",
   counter, of_stats<&server_stats::tls_handshake_failures>},
  {"voicebot_cluster_tls_handshake_failures_total",
   "Connections on the cluster port, to or from another instance, whose "
   "mutual TLS handshake failed (another CA's certificate, none, expired).",
   counter, of_stats<&server_stats::cluster_tls_handshake_failures>},

  // -- voice (SPEC §9) --
  {"voicebot_voice_peers", "Voice peers in all lobbies.", gauge,
   of_stats<&server_stats::voice_peers>},
  {"voicebot_signals_relayed_total",
   "Signaling messages sent on from one voice peer's socket to another's.",
   counter, of_stats<&server_stats::signals_relayed>},
  {"voicebot_signal_bytes_total",
   "Bytes of the data of the signaling messages sent on.", counter,
   of_stats<&server_stats::signal_bytes>},
  {"voicebot_hellos_refused_total",
   "Hellos on a lobby WebSocket refused, by code (bad_token, voice_full).",
   counter, hellos_refused},
  {"voicebot_turn_credentials_total",
   "TURN credentials handed out in welcomes.", counter,
   of_stats<&server_stats::turn_credentials>},

  // -- snapshots --
  {"voicebot_snapshot_writes_total", "Durable snapshot writes, by file.",
   counter, per_snapshot<&snapshot_stats::writes>},
  {"voicebot_snapshot_write_failures_total",
   "Snapshot writes that failed, by file.", counter,
   per_snapshot<&snapshot_stats::failures>},
  {"voicebot_snapshot_write_duration_seconds",
   "Time to write one snapshot durably (write, fsync, rename, fsync of the "
   "directory), by file.",
   histogram, per_snapshot<&snapshot_stats::duration>},

  // -- journals (SPEC §3) --
  {"voicebot_journal_appends_total",
   "Journal appends (one write and one fdatasync each), by file.", counter,
   per_journal<&journal_stats::appends>},
  {"voicebot_journal_records_total",
   "Records in those appends, by file: records per batch is this over "
   "appends.",
   counter, per_journal<&journal_stats::records>},
  {"voicebot_journal_append_failures_total",
   "Journal appends that failed (their changes answered 503 storage_failed), "
   "by file.",
   counter, per_journal<&journal_stats::failures>},
  {"voicebot_journal_append_duration_seconds",
   "Time of one journal append (write and fdatasync), by file.", histogram,
   per_journal<&journal_stats::sync>},
  {"voicebot_journal_bytes", "Size of the journal being appended to, by file.",
   gauge, per_journal<&journal_stats::bytes>},
  {"voicebot_journal_compactions_total",
   "Journals compacted into a new snapshot, by file.", counter,
   per_journal<&journal_stats::compactions>},
  {"voicebot_journal_compaction_failures_total",
   "Compactions that failed (retried), by file.", counter,
   per_journal<&journal_stats::compaction_failures>},
  {"voicebot_journal_compaction_duration_seconds",
   "Time of one compaction (snapshot and journal rotation), by file.",
   histogram, per_journal<&journal_stats::compaction>},
  {"voicebot_quarantined_files_total",
   "Corrupt files moved aside at start-up, by file and kind (journal, "
   "snapshot).",
   counter, quarantined},
  {"voicebot_journal_torn_tails_total",
   "Torn last records cut off at start-up, by file.", counter,
   per_journal<&journal_stats::truncated>},
};

} // namespace

std::string render_metrics(const http_metrics& http, const server_stats& stats,
                           const provider_counts& providers,
                           double uptime_seconds) {
  scrape s{http, stats, providers, uptime_seconds, {}, stats.snapshots.size()};
  http.for_each_used_slot(
    [&](const http_metrics::slot_view& slot) { s.slots.push_back(slot); });
  auto& other = stats.snapshots.back();
  if (other.writes.load() == 0 && other.failures.load() == 0)
    --s.snapshot_files; // "other" only when some other file was written

  std::vector<pm::MetricFamily> out;
  out.reserve(std::size(families));
  for (auto& row : families) {
    pm::MetricFamily f;
    f.name = row.name;
    f.help = row.help;
    f.type = row.type;
    row.read(f, s);
    out.push_back(std::move(f));
  }
  std::ostringstream text;
  pm::TextSerializer{}.Serialize(text, out);
  return text.str();
}

} // namespace vb
