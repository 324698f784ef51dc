// The seams between the embedded and the cluster mode (docs/architecture.md,
// "Ports"). A lobby and the dispatcher hold one port of each kind, picked
// once at wiring (actors/graph): the embedded one answers inside the calling
// actor, without a message (the join's path stays as short as it is); the
// cluster one speaks to a typed cluster actor (claims_actor,
// provider_links_actor, line_relay_actor in actors/interfaces.hpp). No actor
// asks which mode it runs in.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include <caf/expected.hpp>
#include <caf/result.hpp>

#include "actors/interfaces.hpp"

namespace vb {

struct lobby_state;
struct dispatcher_state;
struct server_stats;

/// Who may take a join's name (lobby, bot, nick).
class claim_port {
public:
  using join_key = std::pair<std::string, std::string>; // bot name, nick
  virtual ~claim_port() = default;
  /// Claims the name for `session_id`, then calls lobby.claimed() with the
  /// member holding it (none: the name is the join's now) or lobby.finish()
  /// with an error.
  virtual void reserve(lobby_state& lobby, const join_key& key,
                       const bot_join& j, const std::string& session_id) const
    = 0;
  /// Gives back a name no member holds (a dispatch or a commit failed).
  virtual void release(lobby_state& lobby, const std::string& bot_name,
                       const std::string& nick,
                       const std::string& session_id) const
    = 0;
  /// The store change that adds a member (committing its claim).
  virtual store_change
  join_change(const std::string& lobby_id,
              const std::shared_ptr<const lobby_image::member>& m) const
    = 0;
  /// The store change of a member's leave (giving its name back).
  virtual store_change leave_change(const std::string& lobby_id,
                                    const session& s) const
    = 0;
};

/// Embedded: the lobby's own members decide, at once.
std::shared_ptr<const claim_port> local_claims();
/// Cluster: a reservation in etcd decides (the lobbies' store).
std::shared_ptr<const claim_port> reserved_claims(claims_actor claims);

/// Where lines said in a lobby go beyond this instance.
class line_port {
public:
  virtual ~line_port() = default;
  /// A chat line (lobby id, nick, text).
  virtual void chatted(const std::string& lobby_id, const std::string& nick,
                       const std::string& text) const
    = 0;
  /// A bot member's line (lobby id, session id, text, provider id).
  virtual void said(const std::string& lobby_id, const std::string& session_id,
                    const std::string& text,
                    const std::string& provider_id) const
    = 0;
  /// A voice peer's socket here, or its going (SPEC §9).
  virtual void seated(const voice_seat& seat) const = 0;
};

/// Embedded: nowhere (every subscriber is here).
std::shared_ptr<const line_port> local_lines();
/// Cluster: to every other instance, through the link table.
std::shared_ptr<const line_port> relayed_lines(line_relay_actor relay);

/// Which instance does what a timer of every instance's lobby would do (the
/// empty-lobby grace stops the bots): one, so that each run is stopped once.
class duty_port {
public:
  virtual ~duty_port() = default;
  /// Whether this instance acts now; the others arm their timer again.
  virtual bool on_duty() const = 0;
};

/// Embedded: this instance, the only one.
std::shared_ptr<const duty_port> local_duty();
/// Cluster: the instance holding the sweeper key (cluster/membership.cpp),
/// elected again when it dies.
std::shared_ptr<const duty_port>
sweeper_duty(std::shared_ptr<const server_stats> stats);

/// What a provider answered to one join: its run id or why not.
using join_answer = std::function<void(caf::expected<std::string>)>;

/// The CAF providers whose link another instance holds.
class link_port {
public:
  virtual ~link_port() = default;
  /// A provider linked here, or its link here is gone.
  virtual void linked(const std::string& provider_id) const = 0;
  virtual void unlinked(const std::string& provider_id) const = 0;
  /// A join, a stop, a probe of a CAF provider not linked here.
  virtual void join(dispatcher_state& st, const provider_ptr& p,
                    const dispatch_request& req, join_answer then) const
    = 0;
  virtual caf::result<bool> stop(dispatcher_state& st, const provider& p,
                                 const std::string& run_id) const
    = 0;
  virtual caf::result<bool> probe(dispatcher_state& st,
                                  const provider& p) const
    = 0;
};

/// Embedded: no other instance; a provider not linked here has no link.
std::shared_ptr<const link_port> local_links();
/// Cluster: the instance holding the link takes the call (its dispatcher
/// keeps the dispatch timeout and stops a late acceptance).
std::shared_ptr<const link_port> remote_links(provider_links_actor links);

} // namespace vb
