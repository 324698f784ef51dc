// The contents of the snapshot files (SPEC §3): what storage::snapshot_file
// writes and loads, as text.
//
//   bot_providers.json  {"format":"voicebot-server/bot_providers","version":1,
//                        "providers":[provider, ...]}
//   lobbies.json        {"format":"voicebot-server/lobbies","version":1,
//                        "lobbies":[lobby with sessions, ...]}
//
// A provider is model/json.hpp's snapshot_json (the durable fields only), a
// session its to_json. Fields added later (the fleet's, SPEC §7) are
// optional when reading: files written before them still load.
//
// decode_providers also reads the original Python server's file: an object
// keyed by provider_id, each value a pydantic dump {provider_id, base_url,
// name, description, registered_at, last_seen, bots?}; the key wins when the
// value's provider_id is missing or different, and the transport is http.
//
// The decoders never throw and check the nesting depth before parsing; on
// false, `why` says what is wrong (for the log line) and `out` is unchanged.
// Either the whole file loads or none of it does: one bad entry rejects the
// file, so that the snapshot file falls back to the previous generation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/types.hpp"

namespace vb {

constexpr const char* providers_format = "voicebot-server/bot_providers";
constexpr const char* lobbies_format = "voicebot-server/lobbies";
constexpr int snapshot_version = 1;

/// Compact JSON of all providers.
std::string encode_providers(const std::vector<provider>& ps);

/// The JSON of one provider, as a providers snapshot holds it; the registry
/// renders each provider when it changes and keeps the text.
std::string provider_json(const provider& p);

/// The same text as encode_providers, assembled from rendered providers;
/// `journal_seq` (when not 0) is the last journal record the snapshot holds.
std::string
encode_provider_fragments(const std::vector<const std::string*>& ps,
                          uint64_t journal_seq = 0);

/// Reads our format or the Python server's; `{}` is a legacy file with no
/// providers. Rejects: empty text, malformed or truncated JSON, too deep,
/// another format or a newer version, a provider without a provider_id or
/// name, a bot without a name, duplicate provider_ids, fields of the wrong
/// type.
/// `journal_seq`, when given, gets the snapshot's last journal record (0 for
/// files written before journals, and the Python server's).
bool decode_providers(const std::string& text, std::vector<provider>& out,
                      std::string& why, uint64_t* journal_seq = nullptr);

/// Compact JSON of all lobbies, with their sessions.
std::string encode_lobbies(const std::vector<lobby>& ls);

/// The JSON of one session, as a lobbies snapshot holds it; owners render
/// each member once and keep the text.
std::string session_json(const session& s);

/// One lobby of a lobbies snapshot with its members already rendered by
/// session_json (the header's own sessions are ignored).
struct lobby_fragments {
  const lobby* header = nullptr;
  std::vector<const std::string*> sessions;
};

/// The same text as encode_lobbies, assembled from rendered members: the
/// cost of a write no longer grows with rendering every member each time.
std::string encode_lobby_fragments(const std::vector<lobby_fragments>& ls);

/// Reads our format. Rejects as decode_providers does, plus a lobby without
/// an id or name, a session without a session_id, duplicate lobby ids.
bool decode_lobbies(const std::string& text, std::vector<lobby>& out,
                    std::string& why, uint64_t* journal_seq = nullptr);

/// One lobby of a lobbies snapshot as the lobby store keeps it: the header
/// (lobby_header_json) and the members (session_json), both rendered.
struct lobby_parts {
  const std::string* header = nullptr;
  std::vector<const std::string*> sessions;
};

/// A lobbies snapshot assembled from rendered parts.
std::string encode_lobby_parts(const std::vector<lobby_parts>& ls,
                               uint64_t journal_seq);

} // namespace vb
