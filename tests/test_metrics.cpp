// /metrics: lock-free recording and the Prometheus text rendering.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "actors/stats.hpp"
#include "http/metrics.hpp"
#include "http/routes.hpp"

using namespace std::chrono_literals;

namespace {

int route_index(const char* method, const char* pattern) {
  auto& table = vb::route_table();
  for (size_t i = 0; i < table.size(); ++i)
    if (std::string{table[i].method} == method
        && std::string{table[i].pattern} == pattern)
      return static_cast<int>(i);
  FAIL("no route " << method << " " << pattern);
  return -1;
}

/// The value of one sample line, e.g. `name{labels} 3`; -1 when missing.
double sample(const std::string& text, const std::string& series) {
  auto pos = text.find("\n" + series + " ");
  if (pos == std::string::npos)
    return -1;
  pos += series.size() + 2;
  return std::stod(text.substr(pos, text.find('\n', pos) - pos));
}

} // namespace

TEST_CASE("metrics: a latency histogram puts each observation in its bucket",
          "[metrics]") {
  vb::latency_histogram h;
  h.observe(100us);  // <= 0.0005
  h.observe(500us);  // <= 0.0005 (upper bounds are inclusive)
  h.observe(3ms);    // <= 0.005
  h.observe(20s);    // +Inf
  CHECK(h.count() == 4);
  CHECK(h.buckets[0] == 2);
  CHECK(h.buckets[3] == 1);
  CHECK(h.buckets.back() == 1);
  CHECK(h.sum_ns == 100'000 + 500'000 + 3'000'000 + 20'000'000'000ull);
}

TEST_CASE("metrics: requests by route pattern and status, in Prometheus text",
          "[metrics]") {
  vb::http_metrics m;
  vb::server_stats stats;
  auto lobby = route_index("GET", "/api/lobby/{lobby_id}");
  m.record(lobby, 200, 2ms);
  m.record(lobby, 200, 30ms);
  m.record(lobby, 404, 1ms);
  m.record(-1, 404, 1ms);   // no route matched
  m.record(lobby, 418, 1ms); // no slot of its own: its class
  auto text = vb::render_metrics(m, stats, {3, 1, 0, 2}, 12.5);
  INFO(text);
  const std::string series
    = R"(voicebot_http_requests_total{method="GET",route="/api/lobby/{lobby_id}",status=)";
  CHECK(sample(text, series + "\"200\"}") == 2);
  CHECK(sample(text, series + "\"404\"}") == 1);
  CHECK(sample(text, series + "\"4xx\"}") == 1);
  CHECK(sample(text, R"(voicebot_http_requests_total{method="other",route="unmatched",status="404"})")
        == 1);
  const std::string hist
    = R"(voicebot_http_request_duration_seconds_bucket{method="GET",route="/api/lobby/{lobby_id}",status="200",le=)";
  CHECK(sample(text, hist + "\"0.001\"}") == 0);
  CHECK(sample(text, hist + "\"0.0025\"}") == 1);
  CHECK(sample(text, hist + "\"0.05\"}") == 2);
  CHECK(sample(text, hist + "\"+Inf\"}") == 2);
  CHECK(sample(text, R"(voicebot_http_request_duration_seconds_count{method="GET",route="/api/lobby/{lobby_id}",status="200"})")
        == 2);
  // Routes without requests have no series.
  CHECK(text.find("route=\"/api/bots\"") == std::string::npos);
  // Providers by status, all four always.
  CHECK(sample(text, R"(voicebot_providers{status="online"})") == 3);
  CHECK(sample(text, R"(voicebot_providers{status="suspect"})") == 1);
  CHECK(sample(text, R"(voicebot_providers{status="unreachable"})") == 0);
  CHECK(sample(text, R"(voicebot_providers{status="draining"})") == 2);
  CHECK(sample(text, "voicebot_uptime_seconds") == 12.5);
  CHECK(text.find("# TYPE voicebot_http_requests_total counter") != std::string::npos);
  CHECK(text.find("# TYPE voicebot_http_request_duration_seconds histogram")
        != std::string::npos);
}

TEST_CASE("metrics: actor counters and snapshot writes by file", "[metrics]") {
  vb::http_metrics m;
  vb::server_stats stats;
  stats.lobbies = 4;
  stats.members = 9;
  stats.evictions = 2;
  stats.held_sweeps = 1;
  auto& providers = stats.snapshot("bot_providers.json");
  ++providers.writes;
  providers.duration.observe(7ms);
  ++stats.snapshot("lobbies.json").failures;
  auto text = vb::render_metrics(m, stats, {}, 0);
  INFO(text);
  CHECK(sample(text, "voicebot_lobbies") == 4);
  CHECK(sample(text, "voicebot_lobby_members") == 9);
  CHECK(sample(text, "voicebot_provider_evictions_total") == 2);
  CHECK(sample(text, "voicebot_cleanup_held_sweeps_total") == 1);
  CHECK(sample(text, R"(voicebot_snapshot_writes_total{file="bot_providers.json"})") == 1);
  CHECK(sample(text, R"(voicebot_snapshot_writes_total{file="lobbies.json"})") == 0);
  CHECK(sample(text, R"(voicebot_snapshot_write_failures_total{file="lobbies.json"})") == 1);
  CHECK(sample(text, R"(voicebot_snapshot_write_duration_seconds_bucket{file="bot_providers.json",le="0.01"})")
        == 1);
  CHECK(sample(text, R"(voicebot_snapshot_write_duration_seconds_sum{file="bot_providers.json"})")
        == Approx(0.007));
  // The catch-all file appears only when used.
  CHECK(text.find("file=\"other\"") == std::string::npos);
}

TEST_CASE("metrics: recording from many threads loses nothing", "[metrics]") {
  vb::http_metrics m;
  auto health = route_index("GET", "/api/health");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i)
        m.record(health, 200, 1ms);
    });
  for (auto& t : threads)
    t.join();
  vb::server_stats stats;
  auto text = vb::render_metrics(m, stats, {}, 0);
  CHECK(sample(text, R"(voicebot_http_requests_total{method="GET",route="/api/health",status="200"})")
        == 40000);
}

TEST_CASE("metrics: every family in its place, each value from its own counter",
          "[metrics]") {
  vb::http_metrics m;
  m.in_flight = 1;
  m.connections = 2;
  m.refused_connections = 3;
  m.abandoned_responses = 4;
  m.refused(vb::access_error::missing);
  m.refused(vb::access_error::forbidden);
  m.refused(vb::access_error::forbidden);
  m.refused(vb::quota::lobbies);
  vb::server_stats stats;
  auto& lobbies = stats.journal("lobbies.json");
  // Each counter of the actors, and the series that reports it.
  const std::pair<std::atomic<uint64_t>*, const char*> counters[] = {
    {&stats.lobbies, "voicebot_lobbies"},
    {&stats.members, "voicebot_lobby_members"},
    {&stats.evictions, "voicebot_provider_evictions_total"},
    {&stats.held_sweeps, "voicebot_cleanup_held_sweeps_total"},
    {&stats.failovers, "voicebot_join_failovers_total"},
    {&stats.redispatches, "voicebot_redispatches_total"},
    {&stats.orphaned, "voicebot_orphaned_members"},
    {&stats.drains, "voicebot_provider_drains_total"},
    {&stats.removed_answers, "voicebot_removed_answers_total"},
    {&stats.rate_limited, "voicebot_registrations_rate_limited_total"},
    {&stats.idempotent_replays, "voicebot_idempotent_replays_total"},
    {&stats.late_acceptances, "voicebot_late_acceptances_total"},
    {&stats.stray_stops, "voicebot_stray_runs_stopped_total"},
    {&stats.empty_lobby_stops, "voicebot_empty_lobby_bots_stopped_total"},
    {&stats.tls_handshake_failures, "voicebot_caf_tls_handshake_failures_total"},
    {&stats.cluster_tls_handshake_failures,
     "voicebot_cluster_tls_handshake_failures_total"},
    {&stats.voice_peers, "voicebot_voice_peers"},
    {&stats.signals_relayed, "voicebot_signals_relayed_total"},
    {&stats.signal_bytes, "voicebot_signal_bytes_total"},
    {&stats.hellos_bad_token,
     R"(voicebot_hellos_refused_total{code="bad_token"})"},
    {&stats.hellos_voice_full,
     R"(voicebot_hellos_refused_total{code="voice_full"})"},
    {&stats.turn_credentials, "voicebot_turn_credentials_total"},
    {&stats.quarantined_snapshots,
     R"(voicebot_quarantined_files_total{file="any",kind="snapshot"})"},
    {&lobbies.appends, R"(voicebot_journal_appends_total{file="lobbies.json"})"},
    {&lobbies.records, R"(voicebot_journal_records_total{file="lobbies.json"})"},
    {&lobbies.failures,
     R"(voicebot_journal_append_failures_total{file="lobbies.json"})"},
    {&lobbies.bytes, R"(voicebot_journal_bytes{file="lobbies.json"})"},
    {&lobbies.compactions,
     R"(voicebot_journal_compactions_total{file="lobbies.json"})"},
    {&lobbies.compaction_failures,
     R"(voicebot_journal_compaction_failures_total{file="lobbies.json"})"},
    {&lobbies.quarantined,
     R"(voicebot_quarantined_files_total{file="lobbies.json",kind="journal"})"},
    {&lobbies.truncated,
     R"(voicebot_journal_torn_tails_total{file="lobbies.json"})"},
  };
  uint64_t next = 5;
  for (auto& [counter, series] : counters)
    *counter = next++;
  auto text = vb::render_metrics(m, stats, {}, 1.23456);
  INFO(text);

  // Name and type of every family, in order (dashboards and promtool read
  // them; a new family is a new row here).
  std::vector<std::string> families;
  std::regex type_line{"# TYPE (\\S+ \\S+)"};
  for (std::sregex_iterator i{text.begin(), text.end(), type_line}, end;
       i != end; ++i)
    families.push_back((*i)[1]);
  CHECK(families == std::vector<std::string>{
    "voicebot_build_info gauge",
    "voicebot_uptime_seconds gauge",
    "voicebot_http_requests_total counter",
    "voicebot_http_request_duration_seconds histogram",
    "voicebot_http_requests_in_flight gauge",
    "voicebot_http_connections gauge",
    "voicebot_http_connections_refused_total counter",
    "voicebot_http_responses_abandoned_total counter",
    "voicebot_access_refused_total counter",
    "voicebot_quota_refused_total counter",
    "voicebot_providers gauge",
    "voicebot_lobbies gauge",
    "voicebot_lobby_members gauge",
    "voicebot_provider_evictions_total counter",
    "voicebot_cleanup_held_sweeps_total counter",
    "voicebot_join_failovers_total counter",
    "voicebot_redispatches_total counter",
    "voicebot_orphaned_members gauge",
    "voicebot_provider_drains_total counter",
    "voicebot_removed_answers_total counter",
    "voicebot_registrations_rate_limited_total counter",
    "voicebot_idempotent_replays_total counter",
    "voicebot_late_acceptances_total counter",
    "voicebot_stray_runs_stopped_total counter",
    "voicebot_empty_lobby_bots_stopped_total counter",
    "voicebot_caf_tls_handshake_failures_total counter",
    "voicebot_cluster_tls_handshake_failures_total counter",
    "voicebot_voice_peers gauge",
    "voicebot_signals_relayed_total counter",
    "voicebot_signal_bytes_total counter",
    "voicebot_hellos_refused_total counter",
    "voicebot_turn_credentials_total counter",
    "voicebot_snapshot_writes_total counter",
    "voicebot_snapshot_write_failures_total counter",
    "voicebot_snapshot_write_duration_seconds histogram",
    "voicebot_journal_appends_total counter",
    "voicebot_journal_records_total counter",
    "voicebot_journal_append_failures_total counter",
    "voicebot_journal_append_duration_seconds histogram",
    "voicebot_journal_bytes gauge",
    "voicebot_journal_compactions_total counter",
    "voicebot_journal_compaction_failures_total counter",
    "voicebot_journal_compaction_duration_seconds histogram",
    "voicebot_quarantined_files_total counter",
    "voicebot_journal_torn_tails_total counter"});

  CHECK(sample(text, R"(voicebot_build_info{version=")" VB_VERSION "\"}") == 1);
  CHECK(sample(text, "voicebot_uptime_seconds") == 1.234); // whole ms
  CHECK(sample(text, "voicebot_http_requests_in_flight") == 1);
  CHECK(sample(text, "voicebot_http_connections") == 2);
  CHECK(sample(text, "voicebot_http_connections_refused_total") == 3);
  CHECK(sample(text, "voicebot_http_responses_abandoned_total") == 4);
  CHECK(sample(text, R"(voicebot_access_refused_total{code="access_token_missing"})") == 1);
  CHECK(sample(text, R"(voicebot_access_refused_total{code="access_token_invalid"})") == 0);
  CHECK(sample(text, R"(voicebot_access_refused_total{code="access_token_expired"})") == 0);
  CHECK(sample(text, R"(voicebot_access_refused_total{code="access_forbidden"})") == 2);
  CHECK(sample(text, R"(voicebot_quota_refused_total{quota="joins"})") == 0);
  CHECK(sample(text, R"(voicebot_quota_refused_total{quota="lobbies"})") == 1);
  for (auto& [counter, series] : counters) {
    INFO(series);
    CHECK(sample(text, series) == static_cast<double>(counter->load()));
  }
  // Journals of the named files only: "other" has none.
  CHECK(text.find(R"(voicebot_journal_bytes{file="other"})") == std::string::npos);
}
