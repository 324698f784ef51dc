// The dispatcher: calls bot providers for the lobbies (join, stop, probe,
// lobby events), with timeouts: HTTP providers over the original voicebot
// protocol, CAF providers as messages to their actors. The HTTP client runs
// on its own thread and answers with a message; nothing here blocks.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "actors/interfaces.hpp"

namespace vb {

class http_client;

struct dispatcher_config {
  /// This server's own URL, which providers get in each join call.
  std::string server_url;
  /// How long a provider may take to answer a call.
  caf::timespan timeout = std::chrono::seconds(3);
  /// Told when a CAF provider's link drops (may be null in tests).
  registry_actor registry;
};

struct dispatcher_state {
  static inline constexpr const char* name = "dispatcher";

  dispatcher_actor::pointer self = nullptr;
  std::shared_ptr<http_client> client;
  dispatcher_config config;

  /// Calls in flight, by id; each is completed by an `atom::done` message.
  std::unordered_map<uint64_t, std::function<void(const http_reply&)>> calls;
  uint64_t next_call = 0;

  /// The actors of connected CAF providers, by provider id.
  std::unordered_map<std::string, bot_host_actor> hosts;

  /// The actor of a CAF provider, or null when its link is down.
  bot_host_actor host_of(const provider& p) const;
  /// A CAF provider's link dropped (or it left): forget its actor.
  void link_down(const caf::actor_addr& addr, const caf::error& reason);

  /// Starts an HTTP call whose reply comes back as a message.
  void call(std::string method, std::string url, std::string body,
            std::function<void(const http_reply&)> on_reply);
};

dispatcher_actor::behavior_type
dispatcher(dispatcher_actor::stateful_pointer<dispatcher_state> self,
           std::shared_ptr<http_client> client, dispatcher_config config);

} // namespace vb
