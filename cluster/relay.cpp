// What an instance publishes on its cluster port for the others.

#include <functional>

#include <spdlog/spdlog.h>

#include "cluster/internal.hpp"

namespace vb {

using namespace cluster_detail;

namespace {

struct relay_state {
  static inline constexpr const char* name = "cluster-relay";
  dispatcher_actor dispatcher;
  lobby_directory_actor directory;
  /// Voice seats and asks for ours that came before the directory (the
  /// others connect while this instance is still starting).
  std::vector<voice_seat> early_seats;
  bool asked_early = false;
};

/// A provider record enough for the dispatcher's CAF branch (by id).
provider caf_provider(const std::string& id) {
  provider p;
  p.provider_id = id;
  p.name = id;
  p.via = transport::caf;
  return p;
}

cluster_relay_actor::behavior_type
relay_fn(cluster_relay_actor::stateful_pointer<relay_state> self) {
  // What came from another instance, handed to this one's lobby (a lobby
  // not known here yet misses it).
  auto to_lobby = [self](const std::string& lobby_id,
                         std::function<void(const lobby_actor&)> then) {
    if (!self->state.directory)
      return;
    self->request(self->state.directory, std::chrono::seconds(5),
                  atom::subscribe_v, lobby_id)
      .then([then](lobby_actor& l) { then(l); }, [](caf::error&) {});
  };
  auto seat_to_lobby = [to_lobby](const voice_seat& seat) {
    to_lobby(seat.lobby_id, [seat](const lobby_actor& l) {
      caf::anon_send(l, atom::seats_v, seat, atom::remote_v);
    });
  };
  return {
    [=](atom::peers, dispatcher_actor& d, lobby_directory_actor& dir) {
      auto& st = self->state;
      st.dispatcher = d;
      st.directory = dir;
      for (auto& seat : st.early_seats)
        seat_to_lobby(seat);
      st.early_seats.clear();
      if (st.asked_early)
        caf::anon_send(dir, atom::seats_v);
    },
    // Lines said on another instance, for this one's subscribers and CAF
    // bots (never broadcast again).
    [=](atom::chat, const std::string& lobby_id, const std::string& nick,
        const std::string& text, atom::remote) {
      to_lobby(lobby_id, [nick, text](const lobby_actor& l) {
        caf::anon_send(l, atom::chat_v, nick, text, atom::remote_v);
      });
    },
    [=](atom::say, const std::string& lobby_id, const std::string& session_id,
        const std::string& text, const std::string& provider_id, atom::remote) {
      to_lobby(lobby_id, [session_id, text, provider_id](const lobby_actor& l) {
        caf::anon_send(l, atom::say_v, session_id, text, provider_id,
                       atom::remote_v);
      });
    },
    [=](atom::seats, const voice_seat& seat, atom::remote) {
      auto& st = self->state;
      if (!st.directory)
        return st.early_seats.push_back(seat);
      seat_to_lobby(seat);
    },
    // A new connection: this one's seats, to every instance.
    [=](atom::seats) {
      auto& st = self->state;
      if (!st.directory)
        st.asked_early = true;
      else
        caf::anon_send(st.directory, atom::seats_v);
    },
    [=](atom::join, const std::string& id,
        const dispatch_request& req) -> caf::result<std::string> {
      auto& d = self->state.dispatcher;
      if (!d)
        return make_error(ec::unavailable, "this instance is starting");
      // The dispatcher answers the caller itself (within its timeouts).
      return self->delegate(d, atom::join_v, caf_provider(id), req,
                            atom::remote_v);
    },
    [=](atom::stop, const std::string& id,
        const std::string& run_id) -> caf::result<bool> {
      auto& d = self->state.dispatcher;
      if (!d)
        return make_error(ec::unavailable, "this instance is starting");
      return self->delegate(d, atom::stop_v, caf_provider(id), run_id,
                            atom::remote_v);
    },
  };
}

} // namespace

cluster_relay_actor spawn_cluster_relay(caf::actor_system& sys) {
  return sys.spawn(relay_fn);
}

} // namespace vb
