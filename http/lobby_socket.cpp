#include "http/lobby_socket.hpp"

#include <deque>
#include <memory>
#include <string>

#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "model/clock.hpp"
#include "model/json.hpp"
#include "model/validate.hpp"

namespace vb {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;
using json = nlohmann::json;

namespace {

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// -- the messages a page gets (docs/lobby-events.md) ---------------------------

std::string members_message(const lobby& l) {
  return dump(json{{"type", "members"},
                   {"lobby_id", l.id},
                   {"name", l.name},
                   {"members", l.sessions},
                   {"at", unix_now()}});
}

std::string event_message(const lobby_event& ev) {
  json j{{"type", to_string(ev.type)},
         {"lobby_id", ev.lobby_id},
         {"member", ev.member},
         {"at", ev.at}};
  if (ev.type == lobby_event_type::chat)
    j["text"] = ev.text;
  return dump(j);
}

std::string error_message(const request_error& e) {
  auto j = json::parse(render(e), nullptr, false);
  if (!j.is_object())
    j = json::object();
  j["type"] = "error";
  return dump(j);
}

class lobby_socket;

/// The subscriber actor's state: the socket it writes to, while it lives.
struct lobby_subscriber_state {
  static inline constexpr const char* name = "lobby-subscriber";
  std::weak_ptr<lobby_socket> socket;
};

lobby_subscriber_actor::behavior_type
lobby_subscriber(lobby_subscriber_actor::stateful_pointer<lobby_subscriber_state> self,
                 std::weak_ptr<lobby_socket> socket, lobby_actor source);

// -- one WebSocket ---------------------------------------------------------------

class lobby_socket : public std::enable_shared_from_this<lobby_socket> {
public:
  lobby_socket(beast::tcp_stream&& stream, caf::actor_system& sys,
               lobby_actor target, std::atomic<std::size_t>& connections,
               std::atomic<std::size_t>& sockets, lobby_socket_limits limits)
    : ws_(std::move(stream)),
      sys_(sys),
      lobby_(std::move(target)),
      connections_(connections),
      sockets_(sockets),
      limits_(limits) {
    ++connections_;
    ++sockets_;
  }

  ~lobby_socket() {
    stop_subscriber();
    --sockets_;
    --connections_;
  }

  /// On the strand: answers the upgrade request.
  void run(bhttp::request<bhttp::string_body>&& req) {
    req_ = std::move(req);
    // The WebSocket keeps its own timeouts: a ping after 30 s of silence,
    // closed after 60 s without anything from the peer. Beast's suggestion
    // (300 s) pings only every 150 s, past the 60 s a reverse proxy waits
    // by default (nginx's proxy_read_timeout): a quiet lobby would be cut.
    beast::get_lowest_layer(ws_).expires_never();
    auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
    timeouts.idle_timeout = std::chrono::seconds(60);
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) {
        res.set(bhttp::field::server, "voicebot-server");
      }));
    ws_.read_message_max(limits_.max_message_bytes);
    ws_.async_accept(req_, beast::bind_front_handler(&lobby_socket::on_accept,
                                                     shared_from_this()));
  }

  /// From the subscriber actor's thread: queue a message for the page.
  void deliver(std::string text) {
    net::post(ws_.get_executor(),
              [self = shared_from_this(), text = std::move(text)]() mutable {
                self->push(std::move(text));
              });
  }

private:
  void on_accept(beast::error_code ec) {
    if (ec) {
      spdlog::info("websocket for lobby events refused: {}", ec.message());
      return;
    }
    spdlog::info("GET {} 101 (lobby events)", std::string{req_.target()});
    req_ = {};
    subscriber_ = sys_.spawn(lobby_subscriber, weak_from_this(), lobby_);
    do_read();
  }

  void do_read() {
    ws_.async_read(in_, beast::bind_front_handler(&lobby_socket::on_read,
                                                  shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) {
      if (ec == websocket::error::message_too_big)
        spdlog::info("lobby events: a message past {} bytes; closing",
                     limits_.max_message_bytes);
      return finish();
    }
    auto text = beast::buffers_to_string(in_.data());
    in_.consume(in_.size());
    auto parsed = parse_chat_line(text);
    if (!parsed)
      push(error_message(parsed.error));
    else
      caf::anon_send(lobby_, atom::chat_v, std::move(parsed.value->nick),
                     std::move(parsed.value->text));
    if (!closed_)
      do_read();
  }

  /// On the strand: writes in order; a page that falls too far behind is
  /// dropped, so the lobby never waits for it.
  void push(std::string text) {
    if (closed_)
      return;
    if (out_.size() >= limits_.max_queued) {
      spdlog::warn("lobby events: a subscriber {} messages behind; closing it",
                   out_.size());
      beast::error_code ignored;
      beast::get_lowest_layer(ws_).socket().close(ignored);
      return finish();
    }
    out_.push_back(std::move(text));
    if (out_.size() == 1)
      do_write();
  }

  void do_write() {
    ws_.text(true);
    ws_.async_write(net::buffer(out_.front()),
                    beast::bind_front_handler(&lobby_socket::on_write,
                                              shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec)
      return finish();
    out_.pop_front();
    if (!out_.empty() && !closed_)
      do_write();
  }

  /// The connection is over: the subscriber goes, and the lobby forgets it.
  void finish() {
    closed_ = true;
    out_.clear();
    stop_subscriber();
  }

  void stop_subscriber() {
    if (subscriber_) {
      caf::anon_send_exit(subscriber_, caf::exit_reason::user_shutdown);
      subscriber_ = nullptr;
    }
  }

  websocket::stream<beast::tcp_stream> ws_;
  caf::actor_system& sys_;
  lobby_actor lobby_;
  std::atomic<std::size_t>& connections_;
  std::atomic<std::size_t>& sockets_;
  lobby_socket_limits limits_;
  bhttp::request<bhttp::string_body> req_;
  beast::flat_buffer in_;
  std::deque<std::string> out_;
  lobby_subscriber_actor subscriber_;
  bool closed_ = false;
};

// -- the subscriber actor ------------------------------------------------------

lobby_subscriber_actor::behavior_type
lobby_subscriber(lobby_subscriber_actor::stateful_pointer<lobby_subscriber_state> self,
                 std::weak_ptr<lobby_socket> socket, lobby_actor source) {
  self->state.socket = std::move(socket);
  // The lobby gone (shutdown): nothing more will come.
  self->monitor(source);
  self->set_down_handler([=](caf::down_msg&) { self->quit(); });
  // Leaving while the lobby lives: the monitor is taken back first. The
  // lobby keeps a monitor's weak reference to this actor until it fires,
  // and a weak reference keeps the actor's memory: without this, every
  // page that ever watched a lobby would stay allocated for the lobby's
  // life (about 1 kB each).
  auto leave = [self, source](caf::error why) {
    self->demonitor(source.address());
    self->quit(std::move(why));
  };
  self->set_exit_handler([leave](caf::exit_msg& msg) { leave(msg.reason); });
  self->send(source, atom::subscribe_v,
             caf::actor_cast<lobby_subscriber_actor>(self));
  auto deliver = [self, leave](std::string text) {
    if (auto s = self->state.socket.lock())
      s->deliver(std::move(text));
    else
      leave(caf::exit_reason::normal);
  };
  return {
    [=](atom::subscribe, const lobby& l) { deliver(members_message(l)); },
    [=](atom::event, const lobby_event& ev) { deliver(event_message(ev)); },
  };
}

} // namespace

void start_lobby_socket(beast::tcp_stream&& stream,
                        bhttp::request<bhttp::string_body>&& req,
                        caf::actor_system& sys, lobby_actor target,
                        std::atomic<std::size_t>& connections,
                        std::atomic<std::size_t>& sockets,
                        lobby_socket_limits limits) {
  std::make_shared<lobby_socket>(std::move(stream), sys, std::move(target),
                                 connections, sockets, limits)
    ->run(std::move(req));
}

} // namespace vb
