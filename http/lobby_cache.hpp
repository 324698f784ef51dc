// Each Beast I/O thread's handles of the lobbies it joined bots to, so that
// a join asks the lobby itself instead of the directory (one message fewer
// on the join's path, docs/journal.md). Thread-local: no lock, no sharing;
// filled on the connection's thread when a join's answer is written
// (api_reply::then), forgotten when the lobby's actor is gone.
#pragma once

#include <string>

#include "actors/interfaces.hpp"

namespace vb {

/// The lobby's actor this thread knows, or an invalid handle.
lobby_actor cached_lobby(const std::string& lobby_id);
/// Remembers a lobby's actor (bounded: the cache is emptied when full).
void remember_lobby(const std::string& lobby_id, lobby_actor lobby);
/// Forgets it (its actor was gone).
void forget_lobby(const std::string& lobby_id);

} // namespace vb
