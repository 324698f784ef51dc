// The engine's thread and its runs: the GLib main loop, the lobby socket of
// each run (libsoup), hello and welcome, and which peers to call (SPEC §9).
// peer.cpp makes the connections.
#include "provider/voice/internal.hpp"

#include <algorithm>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>

#include <unistd.h>

#include <spdlog/spdlog.h>

namespace vb::voice {

namespace {

/// Signals a second: the server closes a socket past its signal_rate (50).
constexpr unsigned send_limit = 40;
/// Signals kept while the socket is down.
constexpr size_t outbox_max = 1000;
/// How long a run's first hello may meet bad_token: its dispatch comes
/// before its member is written, so the first hello can be early.
constexpr auto early_window = std::chrono::seconds(15);
constexpr auto resend_every = std::chrono::milliseconds(2000);

gboolean run_posted(gpointer data) {
  (*static_cast<std::function<void()>*>(data))();
  return G_SOURCE_REMOVE;
}

gboolean run_repeated(gpointer data) {
  (*static_cast<std::function<void()>*>(data))();
  return G_SOURCE_CONTINUE;
}

void free_posted(gpointer data) {
  delete static_cast<std::function<void()>*>(data);
}

/// ws(s)://host:port/ws/lobby/ID from the server's http(s) URL.
std::string socket_url(const run_spec& s) {
  auto url = s.server_url;
  if (url.rfind("https://", 0) == 0)
    url = "wss://" + url.substr(8);
  else if (url.rfind("http://", 0) == 0)
    url = "ws://" + url.substr(7);
  while (!url.empty() && url.back() == '/')
    url.pop_back();
  return url + "/ws/lobby/" + s.lobby_id;
}

peer_info peer_of(const nlohmann::json& p) {
  peer_info info;
  info.session_id = p.value("session_id", std::string{});
  info.nick = p.value("nick", std::string{});
  info.is_bot = p.value("is_bot", false);
  return info;
}

/// GLib's and GStreamer's own messages (g_warning, g_critical) go to the
/// provider's log, in its order and format, not straight to stderr.
GLogWriterOutput to_log(GLogLevelFlags level, const GLogField* fields, gsize n, gpointer) {
  const char* domain = nullptr;
  const char* text = nullptr;
  for (gsize i = 0; i < n; ++i) {
    if (fields[i].length != -1)
      continue;
    if (std::string_view{fields[i].key} == "GLIB_DOMAIN")
      domain = static_cast<const char*>(fields[i].value);
    else if (std::string_view{fields[i].key} == "MESSAGE")
      text = static_cast<const char*>(fields[i].value);
  }
  if (g_log_writer_default_would_drop(level, domain))
    return G_LOG_WRITER_HANDLED;
  domain = domain ? domain : "GLib";
  text = text ? text : "";
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
    spdlog::error("{}-CRITICAL: {}", domain, text);
  else if (level & G_LOG_LEVEL_WARNING)
    spdlog::warn("{}-WARNING: {}", domain, text);
  else
    spdlog::info("{}: {}", domain, text);
  return G_LOG_WRITER_HANDLED;
}

/// gst_init, with GLib's messages routed to the log first (once: GLib
/// takes its writer once).
void start_gstreamer() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_log_set_writer_func(to_log, nullptr, nullptr);
    gst_init(nullptr, nullptr);
  });
}

} // namespace

void cancel_source(GSource*& source) {
  if (!source)
    return;
  g_source_destroy(source);
  g_source_unref(source);
  source = nullptr;
}

// -- the loop ---------------------------------------------------------------------

void engine::impl::post(std::function<void()> fn) {
  // An idle source, not g_main_context_invoke: that runs at once when called
  // on the loop's own thread, inside whatever called it.
  auto* source = g_idle_source_new();
  g_source_set_callback(source, run_posted, new std::function<void()>(std::move(fn)),
                        free_posted);
  g_source_attach(source, context);
  g_source_unref(source);
}

GSource* engine::impl::after(std::chrono::milliseconds delay,
                             std::function<void()> fn) {
  auto* source = g_timeout_source_new(static_cast<guint>(delay.count()));
  g_source_set_callback(source, run_posted, new std::function<void()>(std::move(fn)),
                        free_posted);
  g_source_attach(source, context);
  return source; // the caller holds a reference, for cancel_source
}

GSource* engine::impl::every(std::chrono::milliseconds period,
                             std::function<void()> fn) {
  auto* source = g_timeout_source_new(static_cast<guint>(period.count()));
  g_source_set_callback(source, run_repeated,
                        new std::function<void()>(std::move(fn)), free_posted);
  g_source_attach(source, context);
  return source;
}

run* engine::impl::find(const std::string& run_id, uint64_t gen) {
  auto i = runs.find(run_id);
  return i == runs.end() || i->second->gen != gen ? nullptr : i->second.get();
}

peer* engine::impl::find(const peer_ref& ref) {
  auto* r = find(ref.run_id, ref.run_gen);
  if (!r)
    return nullptr;
  auto i = r->peers.find(ref.peer_id);
  return i == r->peers.end() || i->second->gen != ref.peer_gen
           ? nullptr
           : i->second.get();
}

engine::engine(engine_config config) : impl_(std::make_unique<impl>()) {
  start_gstreamer();
  impl_->config = std::move(config);
  impl_->context = g_main_context_new();
  impl_->loop = g_main_loop_new(impl_->context, FALSE);
  if (!impl_->config.listener_phrases.empty()) {
    // Unlinked at once and read through /proc/self/fd: nothing is left in
    // the temp directory, not even after a kill -9.
    gchar* path = nullptr;
    auto fd = g_file_open_tmp("voicebot-listener-XXXXXX.fsg", &path, nullptr);
    if (fd >= 0) {
      auto text = phrase_grammar(impl_->config.listener_phrases);
      auto written = ::write(fd, text.data(), text.size());
      ::unlink(path);
      if (written == static_cast<ssize_t>(text.size()))
        impl_->grammar_fd = fd;
      else
        ::close(fd);
    }
    g_free(path);
  }
  auto* e = impl_.get();
  e->thread = std::thread{[e] {
    g_main_context_push_thread_default(e->context);
    // A session belongs to the context it was made in.
    e->session = soup_session_new();
    g_main_loop_run(e->loop);
    e->runs.clear();
    // Let the sockets' and pipelines' last callbacks run.
    while (g_main_context_iteration(e->context, FALSE)) {
    }
    g_object_unref(e->session);
    g_main_context_pop_thread_default(e->context);
  }};
}

void engine::on_events(say_fn say, fenced_fn fenced) {
  auto* e = impl_.get();
  e->post([e, say = std::move(say), fenced = std::move(fenced)]() mutable {
    e->say = std::move(say);
    e->fenced = std::move(fenced);
  });
}

engine::~engine() {
  shutdown();
  g_main_loop_unref(impl_->loop);
  g_main_context_unref(impl_->context);
  if (impl_->grammar_fd >= 0)
    ::close(impl_->grammar_fd);
}

void engine::shutdown() {
  auto* e = impl_.get();
  if (!e->thread.joinable())
    return;
  e->post([e] {
    for (auto& [id, r] : e->runs)
      spdlog::debug("voice of run {} ends: shutting down", id);
    e->runs.clear();
    g_main_loop_quit(e->loop);
  });
  e->thread.join();
  e->say = nullptr;
  e->fenced = nullptr;
}

void engine::start(run_spec spec) {
  auto* e = impl_.get();
  e->post([e, spec = std::move(spec)]() mutable {
    if (e->runs.count(spec.run_id))
      return;
    auto id = spec.run_id;
    auto& r = *e->runs.emplace(id, std::make_unique<run>(*e, std::move(spec), ++e->next_gen))
                 .first->second;
    spdlog::info("voice of run {}: {} as '{}' in lobby {}", id, r.spec.bot_name,
                 r.spec.nick, r.spec.lobby_id);
    e->connect(r);
  });
}

void engine::stop(const std::string& run_id) {
  auto* e = impl_.get();
  e->post([e, run_id] { e->end(run_id, {}); });
}

void engine::status(std::function<void(std::vector<run_status>)> done) {
  auto* e = impl_.get();
  e->post([e, done = std::move(done)] {
    std::vector<run_status> all;
    for (auto& [id, r] : e->runs) {
      run_status s{id, r->welcomed, r->peers.size(), 0};
      for (auto& [pid, p] : r->peers)
        s.connected += p->connected ? 1 : 0;
      all.push_back(std::move(s));
    }
    done(std::move(all));
  });
}

void engine::impl::end(std::string run_id, std::string fenced_why) {
  auto i = runs.find(run_id);
  if (i == runs.end())
    return;
  runs.erase(i); // closes its peers and its socket
  // Said once they are closed: what their teardown logged comes before.
  spdlog::info("voice of run {} ends{}{}", run_id, fenced_why.empty() ? "" : ": ",
               fenced_why);
  if (!fenced_why.empty() && fenced)
    fenced(run_id, fenced_why);
}

// -- a run ------------------------------------------------------------------------

run::run(engine::impl& e, run_spec s, uint64_t g)
  : core(e), spec(std::move(s)), gen(g), window(std::chrono::steady_clock::now()) {
  // An offer that met peer_offline is sent again. Only then: a page
  // takes the same offer twice as a renegotiation, and fails it.
  resend = e.every(resend_every, [this] {
    if (!lost_signal)
      return;
    lost_signal = false;
    for (auto& [pid, p] : peers)
      p->execute(p->neg.resend_offer());
  });
}

run::~run() {
  peers.clear();
  cancel_source(retry);
  cancel_source(resend);
  cancel_source(flush_timer);
  if (connecting) {
    g_cancellable_cancel(connecting);
    g_object_unref(connecting);
  }
  if (ws) {
    g_signal_handlers_disconnect_matched(ws, G_SIGNAL_MATCH_DATA, 0, 0, nullptr,
                                         nullptr, this);
    if (soup_websocket_connection_get_state(ws) == SOUP_WEBSOCKET_STATE_OPEN)
      soup_websocket_connection_close(ws, SOUP_WEBSOCKET_CLOSE_NORMAL, nullptr);
    g_object_unref(ws);
  }
}

void run::send_signal(const std::string& to, const nlohmann::json& data) {
  nlohmann::json msg{{"type", "signal"}, {"to", to}, {"data", data}};
  if (outbox.size() >= outbox_max)
    outbox.pop_front();
  outbox.push_back(msg.dump());
  core.flush(*this);
}

void engine::impl::flush(run& r) {
  if (!r.ws || !r.welcomed)
    return;
  auto now = std::chrono::steady_clock::now();
  if (now - r.window >= std::chrono::seconds(1)) {
    r.window = now;
    r.sent_in_window = 0;
  }
  while (!r.outbox.empty() && r.sent_in_window < send_limit) {
    soup_websocket_connection_send_text(r.ws, r.outbox.front().c_str());
    r.outbox.pop_front();
    ++r.sent_in_window;
  }
  if (r.outbox.empty() || r.flush_timer)
    return;
  auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
    r.window + std::chrono::seconds(1) - now);
  auto id = r.spec.run_id;
  auto gen = r.gen;
  r.flush_timer = after(std::max(wait, std::chrono::milliseconds(1)), [this, id, gen] {
    if (auto* r = find(id, gen)) {
      cancel_source(r->flush_timer);
      flush(*r);
    }
  });
}

// -- the socket -------------------------------------------------------------------

namespace {

struct socket_ref {
  engine::impl* core;
  std::string run_id;
  uint64_t gen;
};

void on_ws_message(SoupWebsocketConnection*, gint type, GBytes* message,
                   gpointer data) {
  auto* r = static_cast<run*>(data);
  if (type != SOUP_WEBSOCKET_DATA_TEXT)
    return;
  gsize size = 0;
  auto* bytes = static_cast<const char*>(g_bytes_get_data(message, &size));
  r->core.on_message(*r, std::string(bytes, size));
}

void on_ws_closed(SoupWebsocketConnection* ws, gpointer data) {
  auto* r = static_cast<run*>(data);
  if (r->ws != ws)
    return;
  spdlog::info("voice of run {}: the lobby socket closed ({}); reconnecting",
               r->spec.run_id, soup_websocket_connection_get_close_code(ws));
  g_signal_handlers_disconnect_matched(ws, G_SIGNAL_MATCH_DATA, 0, 0, nullptr,
                                       nullptr, r);
  g_object_unref(ws);
  r->ws = nullptr;
  r->welcomed = false;
  r->core.reconnect_later(*r);
}

void on_connected(GObject* source, GAsyncResult* result, gpointer data) {
  std::unique_ptr<socket_ref> ref{static_cast<socket_ref*>(data)};
  GError* error = nullptr;
  auto* ws = soup_session_websocket_connect_finish(SOUP_SESSION(source), result,
                                                   &error);
  auto* r = ref->core->find(ref->run_id, ref->gen);
  if (!r) {
    if (ws)
      g_object_unref(ws);
    if (error)
      g_error_free(error);
    return;
  }
  g_clear_object(&r->connecting);
  if (!ws) {
    spdlog::info("voice of run {}: cannot open the lobby socket: {}",
                 r->spec.run_id, error ? error->message : "?");
    g_error_free(error);
    r->core.reconnect_later(*r);
    return;
  }
  r->ws = ws;
  soup_websocket_connection_set_max_incoming_payload_size(ws, 1 << 20);
  soup_websocket_connection_set_keepalive_interval(ws, 15);
  g_signal_connect(ws, "message", G_CALLBACK(on_ws_message), r);
  g_signal_connect(ws, "closed", G_CALLBACK(on_ws_closed), r);
  // resume: after a welcome its connections are still there (a restart of
  // the server, a blip); the first hello of a run starts anew.
  nlohmann::json hello{{"type", "hello"},
                       {"session_id", r->spec.session_id},
                       {"token", r->spec.token},
                       {"resume", r->welcomed_once}};
  soup_websocket_connection_send_text(ws, hello.dump().c_str());
}

} // namespace

void engine::impl::connect(run& r) {
  cancel_source(r.retry);
  if (r.ws || r.connecting)
    return;
  auto url = socket_url(r.spec);
  auto* msg = soup_message_new(SOUP_METHOD_GET, url.c_str());
  if (!msg) {
    spdlog::error("voice of run {}: not a URL: {}", r.spec.run_id, url);
    return;
  }
  r.connecting = g_cancellable_new();
  soup_session_websocket_connect_async(session, msg, nullptr, nullptr,
                                       G_PRIORITY_DEFAULT, r.connecting,
                                       on_connected,
                                       new socket_ref{this, r.spec.run_id, r.gen});
  g_object_unref(msg);
}

void engine::impl::reconnect_later(run& r) {
  if (r.retry)
    return;
  // Full jitter over 200 ms * 2^attempt, at most 5 s.
  auto cap = std::min<int64_t>(5000, int64_t{200} << std::min(r.attempt, 5u));
  ++r.attempt;
  auto delay = std::chrono::milliseconds(
    std::uniform_int_distribution<int64_t>{50, cap}(rng));
  auto id = r.spec.run_id;
  auto gen = r.gen;
  r.retry = after(delay, [this, id, gen] {
    if (auto* r = find(id, gen)) {
      cancel_source(r->retry);
      connect(*r);
    }
  });
}

void engine::impl::on_message(run& r, const std::string& text) {
  auto msg = nlohmann::json::parse(text, nullptr, false);
  if (!msg.is_object())
    return;
  auto type = msg.value("type", std::string{});
  if (type == "welcome") {
    on_welcome(r, msg);
  } else if (type == "peer_joined" && msg.contains("peer")
             && msg["peer"].is_object()) {
    auto info = peer_of(msg["peer"]);
    if (info.session_id.empty() || info.session_id == r.spec.session_id)
      return;
    // It calls us (SPEC §9): a connection to its old self is dropped.
    r.peers.erase(info.session_id);
    r.known[info.session_id] = info;
  } else if (type == "peer_left") {
    auto sid = msg.value("session_id", std::string{});
    r.peers.erase(sid);
    r.known.erase(sid);
  } else if (type == "signal" && msg.contains("data")) {
    on_signal(r, msg.value("from", std::string{}), msg["data"]);
  } else if (type == "replaced") {
    end(r.spec.run_id, "another socket took over its session");
  } else if (type == "error") {
    refused(r, msg.value("code", std::string{}));
  }
}

void engine::impl::on_welcome(run& r, const nlohmann::json& msg) {
  r.welcomed = true;
  r.welcomed_once = true;
  r.attempt = 0;
  std::map<std::string, peer_info> listed;
  if (msg.contains("peers") && msg["peers"].is_array())
    for (auto& p : msg["peers"]) {
      if (!p.is_object())
        continue;
      auto info = peer_of(p);
      if (!info.session_id.empty() && info.session_id != r.spec.session_id)
        listed.emplace(info.session_id, info);
    }
  // A connection to a peer no longer listed: it ended while the socket was down.
  for (auto i = r.peers.begin(); i != r.peers.end();)
    i = listed.count(i->first) ? std::next(i) : r.peers.erase(i);
  r.known = listed;
  // Bots call people only: two bots do not connect.
  for (auto& [sid, info] : listed)
    if (!info.is_bot && !r.peers.count(sid)) {
      auto& p = *r.peers.emplace(sid, std::make_unique<peer>(r, info)).first->second;
      p.build();
      p.call();
    }
  spdlog::info("voice of run {}: welcomed with {} peers", r.spec.run_id,
               listed.size());
  flush(r);
}

void engine::impl::on_signal(run& r, const std::string& from,
                             const nlohmann::json& data) {
  auto i = r.peers.find(from);
  if (i == r.peers.end()) {
    // A person it knows calls: a connection for its offer.
    auto k = r.known.find(from);
    bool offer = data.is_object() && data.contains("description")
                 && data["description"].is_object()
                 && data["description"].value("type", "") == "offer";
    if (k == r.known.end() || k->second.is_bot || !offer)
      return;
    i = r.peers.emplace(from, std::make_unique<peer>(r, k->second)).first;
    i->second->build();
  }
  auto& p = *i->second;
  p.execute(p.neg.on_signal(data));
}

void engine::impl::refused(run& r, const std::string& code) {
  if (code == "bad_token") {
    // Before its first welcome its member may not be written yet; after
    // one, the token was fenced: the member runs elsewhere now.
    if (r.welcomed_once
        || std::chrono::steady_clock::now() - r.started > early_window)
      return end(r.spec.run_id,
                 "its session token was refused (the member moved or ended)");
    if (r.ws) {
      g_signal_handlers_disconnect_matched(r.ws, G_SIGNAL_MATCH_DATA, 0, 0,
                                           nullptr, nullptr, &r);
      soup_websocket_connection_close(r.ws, SOUP_WEBSOCKET_CLOSE_NORMAL, nullptr);
      g_object_unref(r.ws);
      r.ws = nullptr;
    }
    r.welcomed = false;
    return reconnect_later(r);
  }
  if (code == "voice_full")
    spdlog::warn("voice of run {}: the lobby's voice room is full", r.spec.run_id);
  // An unanswered offer is sent again.
  if (code == "peer_offline" || code == "peer_not_found")
    r.lost_signal = true;
}

// -- the listener's grammar ------------------------------------------------------

std::string phrase_grammar(const std::vector<std::string>& phrases) {
  // State 0 starts, state 1 ends; each phrase is a chain from 0 to 1.
  std::vector<std::vector<std::string>> words;
  size_t states = 2;
  for (auto& p : phrases) {
    std::istringstream in{p};
    std::vector<std::string> w;
    for (std::string x; in >> x;)
      w.push_back(x);
    if (w.empty())
      continue;
    states += w.size() - 1;
    words.push_back(std::move(w));
  }
  std::ostringstream out;
  out << "FSG_BEGIN phrases\nNUM_STATES " << states
      << "\nSTART_STATE 0\nFINAL_STATE 1\n";
  size_t next = 2;
  double share = words.empty() ? 1.0 : 1.0 / words.size();
  for (auto& w : words) {
    size_t from = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      size_t to = i + 1 == w.size() ? 1 : next++;
      out << "TRANSITION " << from << ' ' << to << ' '
          << (i == 0 ? share : 1.0) << ' ' << w[i] << '\n';
      from = to;
    }
  }
  out << "FSG_END\n";
  return out.str();
}

std::vector<std::string> unknown_words(const std::vector<std::string>& phrases) {
  std::set<std::string> wanted;
  for (auto& p : phrases) {
    std::istringstream in{p};
    for (std::string x; in >> x;)
      wanted.insert(x);
  }
  std::ifstream dict{"/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict"};
  for (std::string line; std::getline(dict, line) && !wanted.empty();)
    wanted.erase(line.substr(0, line.find(' ')));
  return {wanted.begin(), wanted.end()};
}

bool available(std::string& why) {
  start_gstreamer();
  std::vector<std::string> missing;
  for (auto* name : {"webrtcbin", "nicesrc", "opusenc", "opusdec", "rtpopuspay",
                     "rtpopusdepay", "audiomixer", "audiotestsrc", "audioconvert",
                     "audioresample", "espeak", "pocketsphinx", "dtlssrtpenc",
                     "srtpenc"}) {
    auto* f = gst_element_factory_find(name);
    if (!f)
      missing.emplace_back(name);
    else
      gst_object_unref(f);
  }
  why.clear();
  for (auto& m : missing)
    why += (why.empty() ? "" : ", ") + m;
  return missing.empty();
}

} // namespace vb::voice
