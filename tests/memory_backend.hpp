// The server's actors wired as apps/server_main.cpp wires them, on a real
// (threaded) actor system, with stores in memory (tests/memory_store.hpp)
// and providers that never answer (every call is refused at once): what
// the front end's request path needs without files, sockets or providers.
// Used by the exchange tests and the front end's fuzz target.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include <caf/all.hpp>

#include "actors/graph.hpp"
#include "actors/stats.hpp"
#include "http/api.hpp"
#include "tests/memory_store.hpp"

namespace vb::test {

/// Every HTTP provider call fails at once, as with no provider listening.
struct refusing_link : http_link {
  void request(std::string, std::string, std::string, std::chrono::milliseconds,
               callback done) override {
    done(http_result{0, {}, "connection refused", false});
  }
};

struct memory_config : caf::actor_system_config {
  memory_config() {
    set("logger.verbosity", caf::atom("quiet"));
    set("scheduler.max-threads", 2);
    vb::add_message_types(*this);
  }
};

struct memory_backend {
  memory_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<server_stats> stats = std::make_shared<server_stats>();
  backend be;

  memory_backend() {
    // The graph the server spawns (actors/graph), on the embedded ports with
    // stores in memory.
    graph_ports ports;
    ports.providers.store = sys.spawn(memory_store);
    ports.lobbies.store = sys.spawn(memory_store);
    ports.keys.store = sys.spawn(memory_store);
    graph_config config;
    config.dispatcher.server_url = "http://127.0.0.1:1";
    graph_ = spawn_graph(sys, config, std::move(ports), {},
                         std::make_shared<refusing_link>(), stats);
    be = backend{&sys, graph_.registry, graph_.directory, stats,
                 graph_.idempotency};
  }

  ~memory_backend() {
    graph_.stop(sys);
  }

private:
  graph graph_;
};

} // namespace vb::test
