// Times one durable snapshot write of N providers (default 10,000, two bots
// each): render to JSON (on the writer's thread in the server) and write
// through the snapshot file protocol (temp file, fsync, link, rename, fsync
// dir). Prints the median, min and max of several runs.
//
//   build/vb_bench_snapshot [providers=10000] [runs=15] [dir=./bench-data]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "model/snapshot_codec.hpp"
#include "storage/snapshot_file.hpp"

using namespace vb;
using clock_type = std::chrono::steady_clock;

namespace {

double ms(clock_type::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

struct summary {
  double median, min, max;
};

summary summarize(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  auto median = n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
  return {median, xs.front(), xs.back()};
}

struct write_timing {
  double encode_ms, write_ms;
  std::size_t bytes;
};

// Encodes the snapshot and writes it durably, timing both; nothing (after a
// message) when the write failed.
template <class Encode>
std::optional<write_timing> timed_write(storage::snapshot_file& file,
                                        Encode encode) {
  auto t0 = clock_type::now();
  auto text = encode();
  auto t1 = clock_type::now();
  std::string err;
  if (!file.write(text, err)) {
    std::fprintf(stderr, "write failed: %s\n", err.c_str());
    return std::nullopt;
  }
  auto t2 = clock_type::now();
  return write_timing{ms(t1 - t0), ms(t2 - t1), text.size()};
}

} // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 10000;
  int runs = argc > 2 ? std::atoi(argv[2]) : 15;
  std::string dir = argc > 3 ? argv[3] : "./bench-data";
  std::vector<provider> ps(n);
  for (int i = 0; i < n; ++i) {
    auto& p = ps[i];
    char id[40];
    std::snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", i);
    p.provider_id = id;
    p.name = "provider-" + std::to_string(i);
    p.base_url = "http://127.0.0.1:" + std::to_string(10000 + i % 50000);
    p.description = "benchmark provider";
    p.bots = {bot_info{"echo", "repeats lobby chat"},
              bot_info{"greeter-" + std::to_string(i), "says hello"}};
    p.registered_at = 1764300000.0 + i;
    p.last_seen = 1764300000.0 + i;
  }
  storage::snapshot_file file{dir, "bot_providers.json"};
  // What the registry keeps: each provider rendered when it changed.
  std::vector<std::string> rendered;
  for (auto& p : ps)
    rendered.push_back(provider_json(p));
  std::vector<const std::string*> parts;
  for (auto& r : rendered)
    parts.push_back(&r);
  std::vector<double> assemble_ms, durable_ms;
  std::vector<double> render_ms, write_ms, total_ms;
  std::size_t bytes = 0;
  for (int r = 0; r < runs; ++r) {
    auto t = timed_write(file, [&] { return encode_provider_fragments(parts); });
    if (!t)
      return 1;
    assemble_ms.push_back(t->encode_ms);
    durable_ms.push_back(t->encode_ms + t->write_ms);
  }
  for (int r = 0; r < runs; ++r) {
    auto t = timed_write(file, [&] { return encode_providers(ps); });
    if (!t)
      return 1;
    bytes = t->bytes;
    render_ms.push_back(t->encode_ms);
    write_ms.push_back(t->write_ms);
    total_ms.push_back(t->encode_ms + t->write_ms);
  }
  std::printf("durable snapshot of %d providers (%.1f MiB), %d runs, dir %s\n",
              n, bytes / 1048576.0, runs, dir.c_str());
  std::printf("%-28s %10s %10s %10s\n", "step", "median ms", "min ms", "max ms");
  auto row = [](const char* name, const std::vector<double>& xs) {
    auto s = summarize(xs);
    std::printf("%-28s %10.2f %10.2f %10.2f\n", name, s.median, s.min, s.max);
  };
  std::printf("as the server writes (providers rendered when they change):\n");
  row("assemble rendered providers", assemble_ms);
  row("one durable write, total", durable_ms);
  std::printf("rendering every provider for each write (for comparison):\n");
  row("render JSON", render_ms);
  row("write+fsync+rename+fsync", write_ms);
  row("total", total_ms);
  return 0;
}
