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

#include "actors/dispatcher.hpp"
#include "actors/idempotency.hpp"
#include "actors/directory.hpp"
#include "actors/registry.hpp"
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
    auto provider_store = sys.spawn(memory_store);
    auto lobby_store = sys.spawn(memory_store);
    auto key_store = sys.spawn(memory_store);
    auto registry = sys.spawn(vb::registry, provider_store,
                              std::vector<provider>{}, registry_config{},
                              stats);
    dispatcher_config dc;
    dc.registry = registry;
    dc.stats = stats;
    dc.server_url = "http://127.0.0.1:1";
    auto dispatcher = sys.spawn(vb::dispatcher,
                                std::shared_ptr<http_link>{
                                  std::make_shared<refusing_link>()},
                                dc);
    lobby_peers peers{registry, dispatcher, lobby_store};
    peers.stats = stats;
    auto directory = sys.spawn(lobby_directory, std::vector<lobby_image>{},
                               peers, stats);
    caf::anon_send(registry, atom::peers_v, directory, dispatcher);
    auto keys = sys.spawn(idempotency, directory, key_store,
                          std::vector<idempotency_entry>{},
                          idempotency_config{}, stats);
    be = backend{&sys, registry, directory, stats, keys};
    owned_ = {caf::actor_cast<caf::actor>(registry),
              caf::actor_cast<caf::actor>(dispatcher),
              caf::actor_cast<caf::actor>(directory),
              caf::actor_cast<caf::actor>(keys),
              caf::actor_cast<caf::actor>(provider_store),
              caf::actor_cast<caf::actor>(lobby_store),
              caf::actor_cast<caf::actor>(key_store)};
  }

  ~memory_backend() {
    for (auto& a : owned_)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }

private:
  std::vector<caf::actor> owned_;
};

} // namespace vb::test
