// bench_startup_data: writes a voicebot-server data directory with a large
// state, in the server's own formats (its encoders and storage::journal_file),
// for the start-up and compaction benchmarks of bench/journal.
//
//   bench_startup_data --dir D [options]      (D must not hold a snapshot yet)
//
//   --providers N        providers in bot_providers.json (default 10000), two
//                        bots each
//   --provider-records K records in bot_providers.journal (default 20): K/2
//                        puts of new providers, K/4 puts that change a
//                        snapshot provider, K/4 deletes of snapshot providers
//   --lobbies L          lobbies in lobbies.json (default 100)
//   --members M          bot members in lobbies.json, spread evenly
//                        (default 100000)
//   --leaves A           leave records in lobbies.journal (default 50000): the
//                        first A/L members of each lobby leave
//   --joins B            join records in lobbies.journal (default 50000) of new
//                        members: B/L per lobby, plus 10% of that for odd
//                        lobbies and minus 10% for even ones, so the lobbies'
//                        counts differ
//   --batch R            records per journal batch (default 64, as a busy
//                        server's group commit writes them)
//   --providers-per-lobby K   the bot members of a lobby come from K providers
//                        (default 0: from all of them, round-robin)
//   --echo-url URL       also a provider "bench-fast-provider" with bot "echo"
//                        at URL (first in the snapshot), for joins to dispatch
//   --lobby-ids FILE     write the lobby ids there, one per line
//   --seed S             random seed (default 1)
//
// Prints one JSON line: the counts the server should report after replay
// (providers, lobbies, bot members, the members of the first two lobbies),
// file sizes and how long generating took.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <vector>

#include "model/ids.hpp"
#include "model/journal_codec.hpp"
#include "model/snapshot_codec.hpp"
#include "model/types.hpp"
#include "storage/journal.hpp"
#include "storage/snapshot_file.hpp"

#include "args.hpp"

using namespace vb;

namespace {

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "bench_startup_data: %s\n(see the header of bench/startup_data.cpp)\n",
               why.c_str());
  std::exit(2);
}

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "bench_startup_data: %s\n", why.c_str());
  std::exit(1);
}

long long file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<long long>(st.st_size) : -1;
}

/// Appends payloads in batches of `batch`.
void append_all(storage::journal_file& j, const std::vector<std::string>& records, size_t batch) {
  std::vector<std::string_view> views;
  for (size_t i = 0; i < records.size(); i += batch) {
    views.clear();
    for (size_t k = i; k < std::min(records.size(), i + batch); ++k)
      views.emplace_back(records[k]);
    std::string error;
    if (!j.append(views, error))
      fail("journal append: " + error);
  }
}

/// Writes `records` to the new journal `base`.journal after the snapshot's
/// seq, in batches of `batch`.
void write_journal(const std::string& dir, const std::string& base,
                   uint64_t snapshot_seq,
                   const std::vector<std::string>& records, size_t batch) {
  storage::journal_file j(dir, base);
  storage::journal_replay replay;
  std::string error;
  if (!j.open(snapshot_seq, replay, error))
    fail(base + ".journal: " + error);
  if (!replay.records.empty())
    fail(base + ".journal is not empty");
  append_all(j, records, batch);
}

} // namespace

int main(int argc, char** argv) {
  std::string dir, echo_url, lobby_ids_file;
  size_t n_providers = 10000, n_provider_records = 20, n_lobbies = 100, n_members = 100000,
         n_leaves = 50000, n_joins = 50000, batch = 64, per_lobby_providers = 0;
  unsigned long long seed = 1;
  bench::args args(argc, argv, usage);
  while (args.next()) {
    const auto& a = args.name();
    if (a == "--dir") dir = args.value();
    else if (a == "--providers") n_providers = args.count();
    else if (a == "--provider-records") n_provider_records = args.count();
    else if (a == "--lobbies") n_lobbies = args.count();
    else if (a == "--members") n_members = args.count();
    else if (a == "--leaves") n_leaves = args.count();
    else if (a == "--joins") n_joins = args.count();
    else if (a == "--batch") batch = std::max<size_t>(1, args.count());
    else if (a == "--providers-per-lobby") per_lobby_providers = args.count();
    else if (a == "--echo-url") echo_url = args.value();
    else if (a == "--lobby-ids") lobby_ids_file = args.value();
    else if (a == "--seed") seed = args.count();
    else usage("unknown option " + a);
  }
  if (dir.empty())
    usage("--dir is required");
  if (n_lobbies == 0 || n_providers == 0)
    usage("--lobbies and --providers must be positive");
  if (file_size(dir + "/lobbies.json") >= 0 || file_size(dir + "/bot_providers.json") >= 0)
    fail(dir + " already holds snapshots");
  size_t per_lobby = n_members / n_lobbies;
  if (n_leaves / n_lobbies > per_lobby)
    usage("--leaves: more leaves than members");

  auto t0 = std::chrono::steady_clock::now();
  std::mt19937_64 rng(seed);
  const double now = static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());

  // -- providers ----------------------------------------------------------------
  std::vector<provider> providers;
  providers.reserve(n_providers + 1);
  auto make_provider = [&](size_t i) {
    provider p;
    p.provider_id = new_uuid(rng);
    p.name = "gen-provider-" + std::to_string(i);
    p.base_url = "http://127.0.0.1:9/gen/" + std::to_string(i);
    p.description = "generated provider " + std::to_string(i);
    p.via = transport::http;
    p.bots = {{"gen-" + std::to_string(i) + "-a", "generated bot a"},
              {"gen-" + std::to_string(i) + "-b", "generated bot b"}};
    p.registered_at = now - 3600;
    p.last_seen = now - 60;
    return p;
  };
  if (!echo_url.empty()) {
    provider e;
    e.provider_id = new_uuid(rng);
    e.name = "bench-fast-provider";
    e.base_url = echo_url;
    e.description = "bench fast provider";
    e.bots = {{"echo", "repeats lobby chat (bench)"}};
    e.registered_at = now - 3600;
    e.last_seen = now;
    providers.push_back(e);
  }
  for (size_t i = 0; i < n_providers; ++i)
    providers.push_back(make_provider(i));
  const uint64_t provider_snapshot_seq = 5000;
  {
    std::vector<std::string> texts;
    texts.reserve(providers.size());
    for (auto& p : providers)
      texts.push_back(provider_json(p));
    std::vector<const std::string*> ptrs;
    for (auto& t : texts)
      ptrs.push_back(&t);
    std::string error;
    storage::snapshot_file f(dir, "bot_providers.json");
    if (!f.write(encode_provider_fragments(ptrs, provider_snapshot_seq), error))
      fail("bot_providers.json: " + error);
  }
  size_t final_providers = providers.size();
  {
    std::vector<std::string> recs;
    size_t puts_new = n_provider_records / 2, puts_old = n_provider_records / 4,
           dels = n_provider_records - puts_new - puts_old;
    size_t first = echo_url.empty() ? 0 : 1;
    for (size_t i = 0; i < puts_new; ++i)
      recs.push_back(provider_put_record(provider_json(make_provider(n_providers + i))));
    for (size_t i = 0; i < puts_old && first + i < providers.size(); ++i) {
      auto p = providers[first + i];
      p.description = "changed in the journal";
      p.last_seen = now;
      recs.push_back(provider_put_record(provider_json(p)));
    }
    size_t deleted = 0;
    for (size_t i = 0; i < dels && first + puts_old + i < providers.size(); ++i, ++deleted)
      recs.push_back(provider_del_record(providers[first + puts_old + i].provider_id));
    final_providers = providers.size() + puts_new - deleted;
    write_journal(dir, "bot_providers", provider_snapshot_seq, recs, 8);
  }

  // -- lobbies --------------------------------------------------------------------
  // Bot members point at the generated providers (not the deleted ones).
  size_t first_member_provider = (echo_url.empty() ? 0 : 1) + n_provider_records;
  auto member_provider = [&](size_t lobby_no, size_t k) -> const provider& {
    size_t base = std::min(first_member_provider, providers.size() - 1);
    size_t span = providers.size() - base;
    if (per_lobby_providers)
      return providers[base + (lobby_no * per_lobby_providers + k % per_lobby_providers) % span];
    return providers[base + k % span];
  };
  size_t member_counter = 0;
  auto make_member = [&](size_t lobby_no, double joined) {
    session s;
    s.session_id = new_uuid(rng);
    s.nick = "member-" + std::to_string(member_counter);
    s.is_bot = true;
    auto& p = member_provider(lobby_no, member_counter);
    s.bot_name = p.bots[member_counter % p.bots.size()].name;
    s.provider_id = p.provider_id;
    s.run_id = "run-" + std::to_string(member_counter);
    s.joined_at = joined;
    ++member_counter;
    return s;
  };
  std::vector<lobby> lobbies(n_lobbies);
  for (size_t l = 0; l < n_lobbies; ++l) {
    lobbies[l].id = new_uuid(rng);
    lobbies[l].name = "gen-lobby-" + std::to_string(l);
    lobbies[l].is_private = false;
    lobbies[l].created_at = now - 7200;
    size_t count = per_lobby + (l < n_members % n_lobbies ? 1 : 0);
    lobbies[l].sessions.reserve(count);
    for (size_t k = 0; k < count; ++k)
      lobbies[l].sessions.push_back(make_member(l, now - 3000));
  }
  const uint64_t lobby_snapshot_seq = 200000;
  {
    std::vector<std::string> headers;
    std::vector<std::vector<std::string>> members(n_lobbies);
    headers.reserve(n_lobbies);
    for (size_t l = 0; l < n_lobbies; ++l) {
      headers.push_back(lobby_header_json(lobbies[l]));
      members[l].reserve(lobbies[l].sessions.size());
      for (auto& s : lobbies[l].sessions)
        members[l].push_back(session_json(s));
    }
    std::vector<lobby_parts> parts(n_lobbies);
    for (size_t l = 0; l < n_lobbies; ++l) {
      parts[l].header = &headers[l];
      for (auto& m : members[l])
        parts[l].sessions.push_back(&m);
    }
    std::string error;
    storage::snapshot_file f(dir, "lobbies.json");
    if (!f.write(encode_lobby_parts(parts, lobby_snapshot_seq), error))
      fail("lobbies.json: " + error);
  }
  // Journal: leaves and joins interleaved, lobbies round-robin.
  std::vector<size_t> counts(n_lobbies);
  for (size_t l = 0; l < n_lobbies; ++l)
    counts[l] = lobbies[l].sessions.size();
  std::vector<std::vector<std::string>> leave_recs(n_lobbies), join_recs(n_lobbies);
  size_t leaves_per = n_leaves / n_lobbies;
  for (size_t l = 0; l < n_lobbies; ++l)
    for (size_t k = 0; k < leaves_per && k < lobbies[l].sessions.size(); ++k) {
      leave_recs[l].push_back(leave_record(lobbies[l].id, lobbies[l].sessions[k].session_id));
      --counts[l];
    }
  size_t joins_per = n_joins / n_lobbies, delta = joins_per / 10, joins_written = 0;
  for (size_t l = 0; l < n_lobbies; ++l) {
    size_t j = l % 2 ? joins_per + delta : joins_per - delta;
    if (l + 1 == n_lobbies && n_lobbies % 2) // odd count: keep the total
      j = joins_per;
    for (size_t k = 0; k < j; ++k) {
      join_recs[l].push_back(join_record(lobbies[l].id, session_json(make_member(l, now - 100))));
      ++counts[l];
      ++joins_written;
    }
  }
  std::vector<std::string> recs;
  recs.reserve(n_leaves + n_joins);
  for (size_t round = 0;; ++round) {
    bool any = false;
    for (size_t l = 0; l < n_lobbies; ++l) {
      if (round < leave_recs[l].size()) {
        recs.push_back(std::move(leave_recs[l][round]));
        any = true;
      }
      if (round < join_recs[l].size()) {
        recs.push_back(std::move(join_recs[l][round]));
        any = true;
      }
    }
    if (!any)
      break;
  }
  write_journal(dir, "lobbies", lobby_snapshot_seq, recs, batch);
  if (!lobby_ids_file.empty()) {
    std::ofstream f(lobby_ids_file);
    for (auto& l : lobbies)
      f << l.id << '\n';
    if (!f)
      fail("cannot write " + lobby_ids_file);
  }
  size_t total = 0;
  for (auto c : counts)
    total += c;
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"providers\":%zu,\"lobbies\":%zu,\"bot_members\":%zu,\"snapshot_members\":%zu,"
              "\"lobby_journal_records\":%zu,\"provider_journal_records\":%zu,"
              "\"check_lobbies\":{\"%s\":%zu,\"%s\":%zu},"
              "\"bytes\":{\"bot_providers.json\":%lld,\"bot_providers.journal\":%lld,"
              "\"lobbies.json\":%lld,\"lobbies.journal\":%lld},\"seconds\":%.2f}\n",
              final_providers, n_lobbies, total, n_lobbies * per_lobby + n_members % n_lobbies,
              recs.size(), n_provider_records, lobbies[0].id.c_str(), counts[0],
              lobbies[n_lobbies > 1 ? 1 : 0].id.c_str(), counts[n_lobbies > 1 ? 1 : 0],
              file_size(dir + "/bot_providers.json"), file_size(dir + "/bot_providers.journal"),
              file_size(dir + "/lobbies.json"), file_size(dir + "/lobbies.journal"), secs);
  (void)joins_written;
  return 0;
}
