#include "http/lobby_socket.hpp"

#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/stats.hpp"
#include "http/metrics.hpp"
#include "model/access_token.hpp"
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

std::string event_message(const lobby_event& ev,
                          leave_reason why = leave_reason::asked) {
  json j{{"type", to_string(ev.type)},
         {"lobby_id", ev.lobby_id},
         {"member", ev.member},
         {"at", ev.at}};
  if (ev.type == lobby_event_type::chat)
    j["text"] = ev.text;
  // Ordinary leaves keep their shape: only a leave with a reason says it.
  if (ev.type == lobby_event_type::member_left && why != leave_reason::asked)
    j["reason"] = to_string(why);
  return dump(j);
}

/// A voice error (SPEC §9): {"type":"error","code":CODE,"detail":...}.
std::string voice_error(const char* code, const std::string& detail) {
  return dump(json{{"type", "error"}, {"code", code}, {"detail", detail}});
}

std::string signal_message(const std::string& from, const std::string& data) {
  // `data` is JSON already (the sender's, compacted): passed on unchanged.
  std::string out = R"({"type":"signal","from":)";
  out += dump(json(from));
  out += R"(,"data":)";
  out += data;
  out += '}';
  return out;
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
  std::shared_ptr<const voice_options> voice;
  /// Counts hellos refused for want of an access token (null in tests).
  std::shared_ptr<const http_metrics> metrics;
};

lobby_subscriber_actor::behavior_type
lobby_subscriber(lobby_subscriber_actor::stateful_pointer<lobby_subscriber_state> self,
                 std::weak_ptr<lobby_socket> socket, lobby_actor source,
                 std::shared_ptr<const voice_options> voice,
                 std::shared_ptr<const http_metrics> metrics);

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

  /// From the subscriber actor's thread: the socket speaks for a session
  /// now (its welcome), or (`session_id` empty) for no one any more.
  void speaks_for(std::string session_id, std::string text) {
    net::post(ws_.get_executor(),
              [self = shared_from_this(), sid = std::move(session_id),
               text = std::move(text)]() mutable {
                self->speaks_for_ = std::move(sid);
                self->push(std::move(text));
              });
  }

  /// From the subscriber actor's thread: the lobby's voice sockets now.
  void peers(voice_table_ptr table) {
    net::post(ws_.get_executor(),
              [self = shared_from_this(), table = std::move(table)]() mutable {
                self->table_ = std::move(table);
              });
  }

private:
  void on_accept(beast::error_code ec) {
    if (ec) {
      spdlog::info("websocket for lobby events refused: {}", ec.message());
      return;
    }
    spdlog::info("GET {} 101 (lobby events)",
                 redact_access_token({req_.target().data(), req_.target().size()}));
    req_ = {};
    subscriber_ = sys_.spawn(lobby_subscriber, weak_from_this(), lobby_,
                             limits_.voice, limits_.metrics);
    window_start_ = std::chrono::steady_clock::now();
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
    if (!within_rate())
      return close_for_policy();
    auto j = json::parse(text, nullptr, false);
    auto type = j.is_object() && j.contains("type") && j["type"].is_string()
                  ? j["type"].get<std::string>()
                  : std::string{};
    if (type == "hello")
      on_hello(j);
    else if (type == "signal")
      on_signal(j);
    else
      on_chat(text);
    if (!closed_)
      do_read();
  }

  void on_chat(const std::string& text) {
    // With access tokens, a line comes from a voice peer (its hello was
    // cleared) or a socket whose upgrade carried a token for this lobby.
    if (limits_.access && speaks_for_.empty()
        && !cleared(limits_.upgrade_token))
      return;
    auto parsed = parse_chat_line(text);
    if (!parsed)
      push(error_message(parsed.error));
    else
      caf::anon_send(lobby_, atom::chat_v, std::move(parsed.value->nick),
                     std::move(parsed.value->text));
  }

  /// {"type":"hello","session_id":S,"token":T,"resume":bool}: the lobby
  /// answers through the subscriber (welcome, or an error).
  void on_hello(const json& j) {
    auto str = [&](const char* key) {
      auto i = j.find(key);
      return i != j.end() && i->is_string() && !i->get_ref<const std::string&>().empty()
               && i->get_ref<const std::string&>().size() <= 256;
    };
    auto resume = j.find("resume");
    auto access = j.find("access_token");
    if (!str("session_id") || !str("token")
        || (resume != j.end() && !resume->is_boolean())
        || (access != j.end() && !str("access_token")))
      return push(voice_error("invalid",
                              "a hello has a session_id and a token "
                              "(strings) and may have resume (a boolean) "
                              "and access_token (a string)"));
    // A person speaks with a frontend's access token for this lobby (the
    // hello's, else the upgrade's); a bot's run needs none: its session
    // token came with its dispatch. The lobby tells them apart.
    auto person_allowed = true;
    if (limits_.access) {
      auto& token = access != j.end() ? access->get_ref<const std::string&>()
                                      : limits_.upgrade_token;
      if (token.empty())
        person_allowed = false;
      else if (!cleared(token))
        return;
    }
    caf::anon_send(subscriber_, atom::hello_v,
                   voice_hello{j["session_id"].get<std::string>(),
                               j["token"].get<std::string>(),
                               resume != j.end() && resume->get<bool>(),
                               person_allowed});
  }

  /// Whether `token` is a good access token for this lobby now; if not,
  /// the socket is told why (and the refusal counted).
  bool cleared(const std::string& token) {
    auto check = limits_.access->verify(token, unix_now());
    if (check)
      if (auto why = check.claims.forbids_lobby(limits_.lobby_id)) {
        check.error = access_error::forbidden;
        check.detail = *why;
      }
    if (check)
      return true;
    if (limits_.metrics)
      limits_.metrics->refused(check.error);
    push(voice_error(to_string(check.error), check.detail));
    return false;
  }

  /// {"type":"signal","to":S2,"data":{...}}: straight to S2's socket (its
  /// subscriber actor), unchanged and in order.
  void on_signal(const json& j) {
    auto& voice = *limits_.voice;
    if (speaks_for_.empty())
      return push(voice_error("not_a_peer",
                              "only a voice peer may signal: say hello first"));
    auto to = j.find("to");
    auto data = j.find("data");
    if (to == j.end() || !to->is_string() || data == j.end()
        || !data->is_object())
      return push(voice_error("invalid", "a signal has a `to` (a session id) "
                                         "and a `data` (a JSON object)"));
    auto text = dump(*data);
    if (text.size() > voice.max_signal_bytes)
      return push(voice_error("too_large",
                              "a signal's data is at most "
                                + std::to_string(voice.max_signal_bytes)
                                + " bytes"));
    auto target = to->get<std::string>();
    const caf::strong_actor_ptr* socket = nullptr;
    if (table_ && target != speaks_for_)
      if (auto i = table_->sockets.find(target); i != table_->sockets.end())
        socket = &i->second;
    if (!socket)
      return push(voice_error("peer_not_found",
                              "no voice peer " + target + " in this lobby"));
    if (!*socket)
      return push(voice_error("peer_offline",
                              "voice peer " + target + " has no socket now"));
    if (voice.stats) {
      ++voice.stats->signals_relayed;
      voice.stats->signal_bytes += text.size();
    }
    caf::anon_send(caf::actor_cast<lobby_subscriber_actor>(*socket),
                   atom::signal_v, speaks_for_, std::move(text));
  }

  /// Messages in the current second, within signal_rate.
  bool within_rate() {
    auto now = std::chrono::steady_clock::now();
    if (now - window_start_ >= std::chrono::seconds(1)) {
      window_start_ = now;
      in_window_ = 0;
    }
    return ++in_window_ <= limits_.voice->signal_rate;
  }

  /// Too many messages: closed with 1008 (policy violation), nothing more
  /// read or relayed.
  void close_for_policy() {
    spdlog::info("lobby events: a socket sent more than {} messages in a "
                 "second; closing it (1008)",
                 limits_.voice->signal_rate);
    closed_ = true;
    stop_subscriber();
    // One write at a time: the close frame goes after the one in flight.
    closing_ = true;
    if (out_.empty())
      return send_close();
    out_.resize(1);
  }

  void send_close() {
    closing_ = false;
    ws_.async_close(websocket::close_reason(websocket::close_code::policy_error,
                                            "too many messages"),
                    [self = shared_from_this()](beast::error_code) {});
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
    if (closing_)
      return send_close();
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
  /// A close frame waits for the write in flight (close_for_policy).
  bool closing_ = false;
  /// Voice, on the strand: the session this socket speaks for (empty:
  /// none), the lobby's voice sockets, and this second's message count.
  std::string speaks_for_;
  voice_table_ptr table_;
  std::chrono::steady_clock::time_point window_start_;
  double in_window_ = 0;
};

// -- the subscriber actor ------------------------------------------------------

lobby_subscriber_actor::behavior_type
lobby_subscriber(lobby_subscriber_actor::stateful_pointer<lobby_subscriber_state> self,
                 std::weak_ptr<lobby_socket> socket, lobby_actor source,
                 std::shared_ptr<const voice_options> voice,
                 std::shared_ptr<const http_metrics> metrics) {
  self->state.socket = std::move(socket);
  self->state.voice = std::move(voice);
  self->state.metrics = std::move(metrics);
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
  auto with_socket = [self, leave](auto f) {
    if (auto s = self->state.socket.lock())
      f(*s);
    else
      leave(caf::exit_reason::normal);
  };
  return {
    [=](atom::subscribe, const lobby& l) { deliver(members_message(l)); },
    [=](atom::event, const lobby_event& ev) { deliver(event_message(ev)); },
    [=](atom::event, const lobby_event& ev, leave_reason why) {
      deliver(event_message(ev, why));
    },
    [=](atom::hello, voice_hello& h) {
      auto me = caf::actor_cast<lobby_subscriber_actor>(self);
      self->request(source, std::chrono::seconds(10), atom::hello_v,
                    std::move(h), me)
        .then(
          [=](voice_welcome& w) {
            auto& voice = *self->state.voice;
            json j{{"type", "welcome"},
                   {"session_id", w.session_id},
                   {"ice_servers",
                    ice_servers(voice.ice, w.session_id, unix_now())},
                   {"peers", w.peers}};
            if (voice.stats && !voice.ice.turn_urls.empty())
              ++voice.stats->turn_credentials;
            with_socket([&](lobby_socket& s) {
              s.speaks_for(w.session_id, dump(j));
            });
          },
          [=](caf::error& err) {
            auto& stats = self->state.voice->stats;
            auto code = code_of(err);
            if (code == ec::bad_token) {
              if (stats)
                ++stats->hellos_bad_token;
              return deliver(voice_error("bad_token",
                                         "unknown session or wrong token"));
            }
            if (code == ec::access_required) {
              if (auto& m = self->state.metrics)
                m->refused(access_error::missing);
              return deliver(voice_error(
                "access_token_missing",
                "a person's hello needs an access token for this lobby"));
            }
            if (code == ec::voice_full) {
              if (stats)
                ++stats->hellos_voice_full;
              return deliver(voice_error(
                "voice_full", "the lobby has its most voice peers"));
            }
            deliver(voice_error("unavailable",
                                "the lobby could not take the hello now: "
                                  + caf::to_string(err)));
          });
    },
    [=](atom::peers, voice_table_ptr& table) {
      with_socket([&](lobby_socket& s) { s.peers(std::move(table)); });
    },
    [=](atom::signal, const std::string& from, const std::string& data) {
      deliver(signal_message(from, data));
    },
    [=](atom::voice, std::string& text, bool speaks_no_more) {
      if (!speaks_no_more)
        return deliver(std::move(text));
      with_socket([&](lobby_socket& s) { s.speaks_for({}, std::move(text)); });
    },
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
