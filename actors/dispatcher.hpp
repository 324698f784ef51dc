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
#include <deque>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_clock.hpp>
#include <caf/node_id.hpp>

#include <caf/typed_response_promise.hpp>

#include "actors/interfaces.hpp"
#include "actors/ports.hpp"

namespace vb {

class http_link;
struct server_stats;

struct dispatcher_config {
  /// This server's own URL, which providers get in each join call.
  std::string server_url;
  /// How long a provider may take to answer a stop or a probe.
  caf::timespan timeout = std::chrono::seconds(3);
  /// How long a provider may take to accept a join (SPEC §7: then the join
  /// fails over).
  caf::timespan dispatch_timeout = std::chrono::seconds(5);
  /// How long a timed-out join's answer is still read, to stop a late
  /// acceptance (SPEC §7).
  caf::timespan late_window = std::chrono::seconds(60);
  /// Told about provider health (may be null in tests).
  registry_actor registry;
  /// Further providers a failed join is tried on (SPEC §7, failover).
  size_t failover_attempts = 1;
  /// Counts failovers and late acceptances (may be null).
  std::shared_ptr<server_stats> stats;
  /// The CAF providers whose link another instance holds (actors/ports.hpp):
  /// none (embedded), or the cluster's link table.
  std::shared_ptr<const link_port> elsewhere = local_links();
  /// Closes this process's CAF connections to the given nodes (the
  /// middleman's, plain or TLS: apps/caf_links); null: nothing to close.
  std::function<void(std::vector<caf::node_id>)> close_links;
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

  /// A join waiting for its provider's answer.
  struct join_call {
    join_answer then;
    provider_ptr target;
    /// Its dispatch timeout passed: `then` had its error already.
    bool expired = false;
  };
  /// Joins in flight, by id.
  std::unordered_map<uint64_t, join_call> joins;
  uint64_t next_join = 0;
  /// Their deadlines in the order they started (all joins have the same
  /// dispatch_timeout, so this is also deadline order): one timer at a time
  /// walks them, not one timer per join.
  std::deque<std::pair<caf::actor_clock::time_point, uint64_t>> deadlines;
  bool timer_armed = false;

  /// A join going down its candidates (SPEC §7, failover).
  struct placing {
    caf::typed_response_promise<placed> rp;
    provider_list candidates;
    dispatch_request req;
    size_t attempt = 0;
  };
  /// Tries the job's current candidate; on a failure that may fail over
  /// (unavailable), the next one, up to failover_attempts more.
  void try_candidate(std::shared_ptr<placing> job);
  /// One provider's join, HTTP or CAF (linked here or, in cluster mode,
  /// elsewhere): `then` gets its run id or error once.
  void join_one(const provider_ptr& p, const dispatch_request& req,
                join_answer then);
  /// Starts a join: the answer within dispatch_timeout goes to `then`; a
  /// later acceptance is told to stop.
  uint64_t start_join(join_answer then, provider_ptr p);
  /// A join's answer (a run id, or an error) arrived.
  void join_answered(uint64_t id, caf::expected<std::string> answer);
  /// A join's dispatch timeout passed.
  void join_expired(uint64_t id);
  /// The deadline timer fired: expires every join past its deadline, and
  /// arms the timer for the next one.
  void expire_due();

  /// The actors of connected CAF providers, by provider id.
  std::unordered_map<std::string, bot_host_actor> hosts;

  /// The actor of a CAF provider, or null when its link is down.
  bot_host_actor host_of(const provider& p) const;
  /// A join or stop of a CAF provider (`forwarded`: from another instance,
  /// which never goes further).
  void caf_join(const provider_ptr& p, const dispatch_request& req,
                bool forwarded, join_answer then);
  caf::result<bool> caf_stop(const provider& p, const std::string& run_id,
                             bool forwarded);
  /// A CAF provider's link dropped (or it left): forget its actor.
  void link_down(const caf::actor_addr& addr, const caf::error& reason);
  /// Fenced (cluster): closes the link of every CAF provider linked here.
  void let_go();

  /// Starts an HTTP call whose reply comes back as a message.
  void call(std::string method, std::string url, std::string body,
            std::function<void(const http_result&)> on_reply,
            caf::timespan timeout = caf::timespan{0});

  /// The provider answered in a way that shows it alive: the registry marks
  /// it seen (and online).
  void seen(const std::string& provider_id);
  /// The provider could not be reached: the registry marks it unreachable.
  void unreachable(const std::string& provider_id);
  /// Reports what a failed call says: unreachable for `ec::unavailable` (no
  /// answer), nothing for a refusal. Returns `err`, to deliver.
  caf::error failed(const provider& p, caf::error err);
};

/// The error of a CAF provider whose link no instance holds.
caf::error no_link(const provider& p);

dispatcher_actor::behavior_type
dispatcher(dispatcher_actor::stateful_pointer<dispatcher_state> self,
           std::shared_ptr<http_link> http, dispatcher_config config);

} // namespace vb
