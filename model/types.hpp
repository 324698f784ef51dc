// Plain value types of voicebot-server: providers, bots, lobbies, sessions,
// and the requests that create or change them. No actors, no Beast here;
// JSON conversion lives in model/json.hpp, validation in model/validate.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vb {

/// A bot as a provider announces it.
struct bot_info {
  std::string name;
  std::string description;
};

/// How the server reaches a provider.
enum class transport : uint8_t { http, caf };

/// Liveness of a provider as the server sees it (SPEC §7).
enum class provider_status : uint8_t { online, suspect, unreachable, draining };

const char* to_string(transport x);
const char* to_string(provider_status x);
bool from_string(const std::string& s, transport& x);
bool from_string(const std::string& s, provider_status& x);

/// A registered bot provider: what the registry owns and persists.
struct provider {
  std::string provider_id;
  std::string name;
  std::string base_url; // empty for CAF providers
  std::string description;
  transport via = transport::http;
  std::vector<bot_info> bots;
  double registered_at = 0; // unix seconds
  double last_seen = 0;     // unix seconds
  provider_status status = provider_status::online;
  // -- fleet (SPEC §7) --
  /// New each time the provider process starts; empty: none announced.
  std::string instance_id;
  /// Seconds between the heartbeats it promised; 0: none announced.
  double heartbeat_interval = 0;
  /// Its last announced load (0 to 1); negative: none announced.
  double load = -1;
  /// The runs it can still take, as last announced; negative: none announced.
  int64_t capacity = -1;
  /// The bot members it runs (the lobbies tell the registry).
  uint64_t active_runs = 0;
  /// When the cleanup rule would evict it (unix seconds).
  double lease_expires_at = 0;
  /// Draining: when its drain times out (unix seconds); 0 otherwise.
  double drain_deadline = 0;
  /// Draining through the drain route (not a provider leaving on its own):
  /// its deregistration leaves a tombstone.
  bool drain_by_operator = false;
};

/// POST /api/bots/providers/register (or the CAF gateway's register).
struct provider_registration {
  std::string name;
  std::string base_url; // empty: not given
  std::string description;
  std::string provider_key;
  std::string provider_id; // empty: not given
  std::vector<bot_info> bots;
  transport via = transport::http;
  /// New each time the provider process starts; empty: not given.
  std::string instance_id;
  /// The heartbeat interval it promises (0.05 to 3600 s); 0: not given.
  double heartbeat_interval = 0;
  /// HTTP only: whether `runs` was given, and the run ids it runs now (CAF
  /// providers send their runs beside the registration).
  bool has_runs = false;
  std::vector<std::string> runs;
};

/// POST /api/bots/providers/{provider_id}/heartbeat, or a CAF provider's
/// heartbeat. Every field is optional.
struct heartbeat {
  bool has_bots = false; // false: keep the known catalog
  std::vector<bot_info> bots;
  std::string instance_id; // empty: not given
  double load = -1;        // 0 to 1; negative: not given
  int64_t capacity = -1;   // >= 0; negative: not given
  bool has_runs = false;   // false: `runs` not given
  std::vector<std::string> runs;
};

/// POST /api/bots/providers/{provider_id}/drain.
struct drain_request {
  std::string provider_key;
  double timeout = -1; // seconds; negative: the server's drain_timeout
  /// Asked through the drain route (an operator): when the drain ends in
  /// deregistration, the instance gets a tombstone. False for a provider
  /// draining itself (a CAF provider on SIGTERM).
  bool by_operator = true;
};

/// One member of a lobby: a person or a bot.
struct session {
  std::string session_id;
  std::string nick;
  bool is_bot = false;
  std::string bot_name;    // bots only
  std::string provider_id; // bots only
  std::string run_id;      // bots only: the provider's id of the running bot
  double joined_at = 0;    // unix seconds
  /// Bots only: no provider could take it after its own was lost (SPEC §7);
  /// it is dispatched again when one can.
  bool orphaned = false;
  /// Bots only: when it last moved to another run (unix seconds); 0: never.
  double moved_at = 0;
  /// The hash of the session's token (model/secret.hpp; SPEC §9): kept in
  /// the data files only, never in listings, events or on the CAF wire.
  /// Empty: a member from before tokens, which no token opens.
  std::string token_hash;
  /// A voice peer (SPEC §9): from its first hello until it ends; a moved
  /// bot's new run is one again once it says hello. In the data files only.
  bool voice = false;
};

/// A voice peer as the others see it (SPEC §9: welcome, peer_joined).
struct voice_peer {
  std::string session_id;
  std::string nick;
  bool is_bot = false;
  std::string bot_name;
};

/// A lobby (room) with its members.
struct lobby {
  std::string id;
  std::string name;
  bool is_private = false; // "private" in JSON
  double created_at = 0;   // unix seconds
  std::vector<session> sessions;
  /// A person has been a member at some time (the empty-lobby grace ends
  /// its bots only then). In the data files only, never in listings.
  bool had_people = false;
};

/// POST /api/lobby.
struct lobby_create {
  std::string name;
  bool is_private = false;
};

/// POST /api/lobby/{lobby_id}/sessions.
struct session_create {
  std::string nick;
};

/// POST /api/bots/{bot_name}/join.
struct join_request {
  std::string lobby_id;
  std::string nick;
  std::string provider_id; // empty: not given
};

/// POST /api/bots/leave.
struct leave_request {
  std::string session_id;
  std::string lobby_id; // empty: not given
};

} // namespace vb
