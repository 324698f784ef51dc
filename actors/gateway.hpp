// The provider gateway: the actor the server publishes for CAF providers
// (SPEC §4). It registers them with the registry, hands their actors to the
// dispatcher (which monitors them), reconciles their runs with the lobbies,
// and passes their heartbeats (load, capacity, runs, instance), drains,
// departures and bot lines on. It is a trust boundary: it checks what it
// gets before any owner of state sees it (by the rules of the HTTP routes),
// the protocol version first (a provider of another version is refused with
// ec::protocol_mismatch and changes nothing).
#pragma once

#include <string>
#include <unordered_map>

#include "actors/interfaces.hpp"

namespace vb {

struct gateway_peers {
  registry_actor registry;
  dispatcher_actor dispatcher;
  lobby_directory_actor directory;
  /// How long the gateway waits for the registry, dispatcher and lobbies.
  caf::timespan timeout = std::chrono::seconds(10);
};

struct gateway_state {
  static inline constexpr const char* name = "provider-gateway";
  gateway_peers peers;
  /// Registered providers by the address of their actor: a bot line counts
  /// only from the provider that runs the bot.
  std::unordered_map<caf::actor_addr, std::string> by_host;

  void remember(const caf::actor_addr& host, const std::string& id);
  void forget(const std::string& id);
};

provider_gateway_actor::behavior_type
provider_gateway(provider_gateway_actor::stateful_pointer<gateway_state> self,
                 gateway_peers peers);

} // namespace vb
