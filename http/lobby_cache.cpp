#include "http/lobby_cache.hpp"

#include <unordered_map>

namespace vb {

namespace {

/// Past this many lobbies a thread starts again from empty (a miss costs
/// one message, the directory's).
constexpr size_t max_cached = 4096;

std::unordered_map<std::string, lobby_actor>& cache() {
  thread_local std::unordered_map<std::string, lobby_actor> lobbies;
  return lobbies;
}

} // namespace

lobby_actor cached_lobby(const std::string& lobby_id) {
  auto& c = cache();
  auto i = c.find(lobby_id);
  return i == c.end() ? lobby_actor{} : i->second;
}

void remember_lobby(const std::string& lobby_id, lobby_actor lobby) {
  auto& c = cache();
  if (c.size() >= max_cached)
    c.clear();
  c[lobby_id] = std::move(lobby);
}

void forget_lobby(const std::string& lobby_id) {
  cache().erase(lobby_id);
}

} // namespace vb
