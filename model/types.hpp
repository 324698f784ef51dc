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
};

/// POST /api/bots/providers/{provider_id}/heartbeat.
struct heartbeat {
  bool has_bots = false; // false: keep the known catalog
  std::vector<bot_info> bots;
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
};

/// A lobby (room) with its members.
struct lobby {
  std::string id;
  std::string name;
  bool is_private = false; // "private" in JSON
  double created_at = 0;   // unix seconds
  std::vector<session> sessions;
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
