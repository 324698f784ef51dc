// Fuzz target http_request: raw bytes as one HTTP request to the front end,
// through vb::exchange (http/exchange.hpp): the parser with the server's
// limits, the header checks, the target's decoding, the router and the API,
// to the actors and back to the bytes of the response, without a socket.
// The front end is the server's first trust boundary. docs/fuzzing.md.
//
// The backend is the server's graph of actors (as apps/server_main.cpp
// spawns it) with in-memory stores (tests/memory_store.hpp) and a provider
// link that accepts every join at once: nothing touches a disk or the
// network. State carries over from one input to the next (a lobby created
// by one request can be joined by the next), and the whole graph is
// replaced every `inputs_per_world` inputs so that it stays small.
//
// Invariants: `done` is called exactly once, within 10 s (a request never
// hangs the front end); a response is an HTTP/1.x response with a status
// line and a header block; no request makes the server answer 500.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <future>
#include <memory>
#include <string>
#include <string_view>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/graph.hpp"
#include "actors/stats.hpp"
#include "fuzz/caf_system.hpp"
#include "fuzz/fuzz_util.hpp"
#include "http/api.hpp"
#include "http/exchange.hpp"
#include "http/metrics.hpp"
#include "link/http_link.hpp"
#include "model/config.hpp"
#include "tests/memory_store.hpp"

namespace {

using namespace std::chrono_literals;

constexpr std::size_t inputs_per_world = 5000;

/// A provider that accepts every join (a run id), and answers every other
/// call 200, at once.
struct accepting_link : vb::http_link {
  void request(std::string, std::string url, std::string,
               std::chrono::milliseconds, callback done) override {
    vb::http_result r;
    r.status = 200;
    r.body = url.find("/join") != std::string::npos
               ? R"({"status":"started","run_id":"run-1"})"
               : "{}";
    done(std::move(r));
  }
};

caf::actor_system* sys = nullptr;

/// The server's actors, the API in front of them, and their exit.
struct world {
  vb::server_options opts;
  std::shared_ptr<vb::server_stats> stats
    = std::make_shared<vb::server_stats>();
  vb::graph graph;
  std::unique_ptr<vb::api> front;

  world() {
    opts.dispatch_timeout = 2;
    // The graph the server spawns (actors/graph), on stores in memory and a
    // link that accepts every join.
    vb::graph_ports ports;
    ports.providers.store = sys->spawn(vb::test::memory_store);
    ports.lobbies.store = sys->spawn(vb::test::memory_store);
    ports.keys.store = sys->spawn(vb::test::memory_store);
    vb::graph_config config;
    config.dispatcher.server_url = "http://127.0.0.1:8000";
    config.dispatcher.dispatch_timeout = 2s;
    graph = vb::spawn_graph(*sys, config, std::move(ports), {},
                            std::make_shared<accepting_link>(), stats);
    front = std::make_unique<vb::api>(
      vb::backend{sys, graph.registry, graph.directory, stats,
                  graph.idempotency},
      opts, std::make_shared<vb::http_metrics>());
  }

  ~world() {
    front.reset();
    graph.stop(*sys);
  }
};

std::unique_ptr<world> current;
std::size_t inputs = 0;

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  sys = vb::fuzz::make_system(2);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (sys == nullptr)
    LLVMFuzzerInitialize(nullptr, nullptr);
  if (!current || ++inputs % inputs_per_world == 0)
    current = std::make_unique<world>();
  std::string_view bytes(reinterpret_cast<const char*>(data), size);

  auto answer = std::make_shared<std::promise<std::string>>();
  auto got = answer->get_future();
  auto calls = std::make_shared<std::atomic<int>>(0);
  vb::exchange(*current->front, current->opts, bytes,
               [answer, calls](std::string response) {
                 VB_FUZZ_CHECK(calls->fetch_add(1) == 0);
                 answer->set_value(std::move(response));
               });
  if (got.wait_for(10s) != std::future_status::ready) {
    std::fprintf(stderr, "no answer within 10 s\n");
    VB_FUZZ_CHECK(!"a request hung");
  }
  auto response = got.get();
  if (response.empty())
    return 0; // closed without an answer (cut short, as a timeout would)
  VB_FUZZ_CHECK(starts_with(response, "HTTP/1.1 ")
                || starts_with(response, "HTTP/1.0 "));
  VB_FUZZ_CHECK(response.find("\r\n\r\n") != std::string::npos);
  auto status = response.substr(9, 3);
  if (status == "500") {
    std::fprintf(stderr, "%s\n", response.c_str());
    VB_FUZZ_CHECK(!"a request made the server answer 500");
  }
  return 0;
}
