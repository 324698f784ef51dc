// Live lobby events and voice signaling over a WebSocket (GET
// /ws/lobby/{lobby_id}, docs/lobby-events.md and docs/voice.md). The HTTP
// connection hands its socket over once the lobby is known; from then on
// one WebSocket session (on the connection's strand) and one subscriber
// actor (which the lobby sends its events to) work as a pair. A signal goes
// from the sender's strand straight to the receiver's subscriber actor (one
// actor hop), by the table of voice sockets the lobby publishes. Included by
// http/server.cpp only.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "actors/interfaces.hpp"
#include "http/voice_options.hpp"

namespace caf {
class actor_system;
}

namespace vb {

class access_verifier;
class http_metrics;

struct lobby_socket_limits {
  /// The largest message a page may send: a signal of max_signal_bytes
  /// and its envelope (past it the socket is closed, 1009).
  std::size_t max_message_bytes = 80 * 1024;
  /// Messages waiting to be written to a page; past this the page is too
  /// slow (or gone) and its connection is closed.
  std::size_t max_queued = 256;
  std::shared_ptr<const voice_options> voice
    = std::make_shared<const voice_options>();
  /// Frontend access tokens (docs/security.md): the verifier (null: off),
  /// the lobby's id (a token's scope), and the token the upgrade carried
  /// (empty: none), for hellos that carry none themselves.
  std::shared_ptr<const access_verifier> access;
  std::string lobby_id;
  std::string upgrade_token;
  /// Where refused hellos are counted (voicebot_access_refused_total).
  std::shared_ptr<const http_metrics> metrics;
};

/// Accepts the WebSocket of an upgrade request for `lobby` on `stream`
/// (on its strand), and subscribes to the lobby's events. `connections`
/// counts the open connection until the socket closes.
void start_lobby_socket(
  boost::beast::tcp_stream&& stream,
  boost::beast::http::request<boost::beast::http::string_body>&& req,
  caf::actor_system& sys, lobby_actor lobby,
  std::atomic<std::size_t>& connections, std::atomic<std::size_t>& sockets,
  lobby_socket_limits limits = {});

} // namespace vb
