// The dispatcher: calls bot providers for the lobbies and the cleanup actor
// (join, stop, probe, lobby events), with timeouts: HTTP providers over the
// original voicebot protocol through the provider link (link/http_link.hpp,
// its own thread, answering with a message), CAF providers as messages to
// their actors. Nothing here blocks.
//
// It is the one actor that tells the registry about provider health, from
// each call's outcome (nobody else sends `seen` or `status`):
// - seen: a join the provider accepted (HTTP 2xx with a run_id, or a CAF
//   run id), a probe the provider answered (any HTTP status);
// - unreachable: a join or stop that got no answer (refused, timed out, no
//   endpoint, a CAF provider not connected or not answering in time), a
//   probe that got no answer, a CAF provider's link dropping;
// - nothing: an answer that refuses (non-2xx, a 2xx without a run_id, a CAF
//   refusal): the provider is there, it said no; and a stop it answered.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "actors/interfaces.hpp"

namespace vb {

class http_link;

struct dispatcher_config {
  /// This server's own URL, which providers get in each join call.
  std::string server_url;
  /// How long a provider may take to answer a call.
  caf::timespan timeout = std::chrono::seconds(3);
  /// Told about provider health (may be null in tests).
  registry_actor registry;
};

struct dispatcher_state {
  static inline constexpr const char* name = "dispatcher";

  dispatcher_actor::pointer self = nullptr;
  /// The provider link to HTTP providers (link/; may be null when there are
  /// none, as in tests of CAF providers: every HTTP call then fails).
  std::shared_ptr<http_link> http;
  dispatcher_config config;

  /// Calls in flight, by id; each is completed by an `atom::done` message.
  std::unordered_map<uint64_t, std::function<void(const http_result&)>> calls;
  uint64_t next_call = 0;

  /// The actors of connected CAF providers, by provider id.
  std::unordered_map<std::string, bot_host_actor> hosts;

  /// The actor of a CAF provider, or null when its link is down.
  bot_host_actor host_of(const provider& p) const;
  /// A CAF provider's link dropped (or it left): forget its actor.
  void link_down(const caf::actor_addr& addr, const caf::error& reason);

  /// Starts an HTTP call whose reply comes back as a message.
  void call(std::string method, std::string url, std::string body,
            std::function<void(const http_result&)> on_reply);

  /// The provider answered in a way that shows it alive: the registry marks
  /// it seen (and online).
  void seen(const std::string& provider_id);
  /// The provider could not be reached: the registry marks it unreachable.
  void unreachable(const std::string& provider_id);
  /// Reports what a failed call says: unreachable for `ec::unavailable` (no
  /// answer), nothing for a refusal. Returns `err`, to deliver.
  caf::error failed(const provider& p, caf::error err);
};

dispatcher_actor::behavior_type
dispatcher(dispatcher_actor::stateful_pointer<dispatcher_state> self,
           std::shared_ptr<http_link> http, dispatcher_config config);

} // namespace vb
