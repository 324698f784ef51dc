// What the lobby, its join flow and the directory share: how long they wait
// for the store, the store changes of a bot member, decoders of the cluster
// store's values, the errors they answer, and stopping runs by provider id.
// Internal to actors/lobby*.cpp and actors/directory.cpp.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/lobby.hpp"

namespace vb {

/// How long a lobby or the directory waits for the store to make a change
/// durable, and the directory for a lobby's reconciliation.
inline constexpr auto store_timeout = std::chrono::seconds(60);
inline constexpr auto persist_timeout = store_timeout + std::chrono::seconds(5);

/// A store that did not answer in time: the change is not durable.
caf::error as_store_error(caf::error err);

/// A session not found here. In cluster mode, while this instance cannot
/// reach etcd (or just woke from a pause), its cache may not have seen the
/// session yet: 503 then, so the client retries, rather than a wrong 404.
caf::error session_not_found(const std::shared_ptr<server_stats>& stats);

/// The store change of a bot member joining or leaving a lobby.
/// The image shares the member with the lobby (rendered when a snapshot
/// is written); the record carries its JSON.
store_change join_change(const std::string& lobby_id,
                         const std::shared_ptr<const lobby_image::member>& m);

/// A new bot member's change in cluster mode: it also commits the
/// reservation of its name (store_claim).
store_change claimed_join_change(
  const std::string& lobby_id,
  const std::shared_ptr<const lobby_image::member>& m);

store_change leave_change(const std::string& lobby_id,
                          const std::string& session_id);

/// A member's record replaced by `now` (a move, a mark, a voice flag): its
/// leave and its join in the journal, and only while it is still a member.
store_batch update_change(const std::string& lobby_id,
                          const std::shared_ptr<const lobby_image::member>& now);

/// A lobby header from its JSON (lobby_header_json), without sessions.
bool decode_header(const std::string& json, const std::string& id, lobby& out,
                   std::string& why);

/// A member of lobby `lobby_id` from its JSON (session_json).
bool decode_member(const std::string& json, const std::string& lobby_id,
                   const std::string& session_id, session& out,
                   std::string& why);

/// Tells a provider, by id, to stop these runs, without waiting: the
/// registry gives the provider, the dispatcher calls it. Failures are
/// logged (a run left over is stopped at a later heartbeat as a stray).
template <class Self>
void stop_runs_of(Self* self, const lobby_peers& peers,
                  const std::string& provider_id,
                  std::vector<std::string> runs) {
  self->request(peers.registry, peers.timeout, atom::get_v, provider_id)
    .then(
      [self, peers, runs](provider& p) {
        for (auto& run : runs)
          self->request(peers.dispatcher, peers.timeout, atom::stop_v, p, run)
            .then([](bool) {},
                  [run](caf::error& err) {
                    spdlog::warn("stop of run {} failed: {}", run,
                                 to_string(err));
                  });
      },
      [provider_id, runs](caf::error&) {
        spdlog::warn("stop of {} runs: provider {} is gone", runs.size(),
                     provider_id);
      });
}

} // namespace vb
