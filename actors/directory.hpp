// The lobby directory: a router that creates lobbies (durably, through the
// store), lists them, finds them by name and by session, and owns
// lobbies.json's lobby records; the lobbies tell it of their members after
// the fact, so it is on no join's path (actors/directory.cpp).
#pragma once

#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/lobby.hpp"

namespace vb {

/// The directory: a router. It creates lobbies (durably, through the
/// store), lists them and finds them by name and by session; the lobbies
/// tell it of their members after the fact, so it is on no join's path.
struct lobby_directory_state {
  static inline constexpr const char* name = "lobby-directory";

  struct entry {
    lobby_actor actor;
    /// The lobby and its members as the lobby last told (for listings).
    lobby_image value;
    uint64_t order = 0;
  };

  using created_promise = caf::typed_response_promise<lobby_created>;

  lobby_directory_actor::pointer self = nullptr;
  lobby_peers peers;
  std::shared_ptr<server_stats> stats;
  std::unordered_map<std::string, entry> lobbies;
  std::unordered_map<std::string, std::string> by_name; // name -> id
  /// Session id -> lobby id, for leaves that name no lobby.
  std::unordered_map<std::string, std::string> by_session;
  /// Where a bot member is.
  struct placed {
    std::string lobby_id;
    std::shared_ptr<const lobby_image::member> member;
  };
  /// The bot members of each provider: provider id -> session id -> where
  /// (active_runs, re-dispatch, lost runs).
  std::unordered_map<std::string, std::unordered_map<std::string, placed>>
    by_provider;
  /// Orphaned bot members: session id -> lobby id.
  std::unordered_map<std::string, std::string> orphaned;
  /// After a member is orphaned, when its bot's providers are offered it
  /// once more (see update()).
  caf::timespan orphan_recheck = std::chrono::seconds(1);
  /// Runs a provider's heartbeats list that no bot member holds: provider
  /// id -> run id -> when it was first listed so (unix seconds).
  std::unordered_map<std::string, std::unordered_map<std::string, double>>
    strays;
  /// Creations on their way to the store, by name: the same name again
  /// waits for the first.
  std::map<std::string, std::vector<created_promise>> creating;
  uint64_t next_order = 0;
  uint64_t members = 0;
  std::mt19937_64 rng{std::random_device{}()};

  entry& add(lobby_image value);
  entry* find(const std::string& id);
  void update(const member_change& change);
  /// The public lobbies, rebuilt only when `listing_version` moved.
  lobby_listing_ptr listing() const;
  /// Bumped by every change a listing shows (a lobby added or removed, a
  /// member joining, leaving or changing).
  uint64_t listing_version = 1;
  mutable lobby_listing_ptr listing_cache;
  /// The lobby holding a session, or null.
  const entry* find_session(const std::string& session_id) const;
  void create(const lobby_create& c, created_promise rp);
  void publish_counts();
  /// A member enters or leaves the indexes; the registry hears of the
  /// provider's new count.
  void index_member(const std::shared_ptr<const lobby_image::member>& m,
                    const std::string& lobby_id);
  void unindex_member(const session& s);
  /// Tells the registry how many bot members a provider runs.
  void report_runs(const std::string& provider_id);
  /// A heartbeat's runs: those no bot member has held for stray_grace are
  /// stopped (again after each further grace while they are listed).
  void stop_strays(const std::string& provider_id,
                   const std::vector<std::string>& runs);
  /// Cluster mode: lobbies and members another instance changed, without
  /// writing them: new lobbies added, members routed to their lobbies;
  /// with `resync`, lobbies the batch does not name are dropped.
  void apply_remote(const remote_batch& batch);
  /// Removes a lobby, its members and its actor (it is gone elsewhere).
  void drop(const std::string& id);
  /// Sends each lobby concerned its members of `sessions` to dispatch
  /// again.
  void redispatch(const std::unordered_map<std::string, placed>& sessions,
                  const provider& old, move_reason why);
};

lobby_directory_actor::behavior_type
lobby_directory(lobby_directory_actor::stateful_pointer<lobby_directory_state> self,
                std::vector<lobby_image> initial, lobby_peers peers,
                std::shared_ptr<server_stats> stats);

} // namespace vb
