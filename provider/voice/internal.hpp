// What engine.cpp (the loop, the runs, their sockets) and peer.cpp (one
// peer connection's media) share. Everything here lives on the engine's
// thread; other threads only post to it (engine::impl::post).
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>

#define GST_USE_UNSTABLE_API
#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <libsoup/soup.h>

#include "provider/voice/engine.hpp"
#include "provider/voice/negotiation.hpp"

namespace vb::voice {

struct peer_info {
  std::string session_id;
  std::string nick;
  bool is_bot = false;
};

struct run;

/// Where a callback from a GStreamer thread goes back to: looked up again
/// on the engine's thread, so a peer or run gone meanwhile is simply missed.
struct peer_ref {
  engine::impl* core;
  std::string run_id;
  uint64_t run_gen;
  std::string peer_id;
  uint64_t peer_gen;
};

/// One peer connection: a pipeline with webrtcbin, the bot's voice into it
/// (a mixer) and what it does with what it hears.
struct peer {
  peer(run& r, peer_info who);
  ~peer();
  peer(const peer&) = delete;
  peer& operator=(const peer&) = delete;

  run& owner;
  peer_info who;
  negotiation neg;
  uint64_t gen = 0; // which pipeline: callbacks of an older one are missed
  GstElement* pipeline = nullptr;
  GstElement* webrtc = nullptr;
  GstElement* mixer = nullptr;
  GSource* bus_watch = nullptr;
  GSource* deadline = nullptr; // the connection must be up by then
  bool negotiation_needed = false;
  bool wants_to_call = false; // an offer waits for webrtcbin to be ready
  bool connected = false;
  GstPad* speech = nullptr; // speech made in advance, held
  gulong speech_hold = 0;

  /// Builds a fresh pipeline (the first, or after a reset).
  void build();
  void teardown();
  /// Carries out the negotiation's steps, in order.
  void execute(std::vector<step> steps);
  /// Calls once webrtcbin is ready to make an offer.
  void call();
  void on_state(GstWebRTCPeerConnectionState state);
  /// The connection did not come up in time: made anew, as after failure.
  void overdue();
  /// Makes `text`'s speech (espeak-ng) into this connection, held until
  /// the connection is up.
  void prepare_speech(const std::string& text);
  void heard(const std::string& hypothesis);
  peer_ref ref() const;
};

/// One bot run's voice: its socket, the peers it knows and its connections.
struct run {
  engine::impl& core;
  run_spec spec;
  uint64_t gen;
  SoupWebsocketConnection* ws = nullptr;
  GCancellable* connecting = nullptr;
  GSource* retry = nullptr;
  GSource* resend = nullptr;
  GSource* flush_timer = nullptr;
  bool welcomed = false;      // this socket got its welcome
  bool welcomed_once = false; // some socket did: a refusal now is a fence
  bool lost_signal = false;   // the server said a signal found no socket
  unsigned attempt = 0;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::map<std::string, peer_info> known;
  std::map<std::string, std::unique_ptr<peer>> peers;
  std::deque<std::string> outbox;
  std::chrono::steady_clock::time_point window;
  unsigned sent_in_window = 0;

  run(engine::impl& e, run_spec s, uint64_t g);
  ~run();
  void send_signal(const std::string& to, const nlohmann::json& data);
};

struct engine::impl {
  engine_config config;
  say_fn say;
  fenced_fn fenced;
  GMainContext* context = nullptr;
  GMainLoop* loop = nullptr;
  std::thread thread;
  SoupSession* session = nullptr;
  int grammar_fd = -1; // the listener's FSG, written at start and unlinked

  /// Where the recognizer reads the FSG: empty without one.
  std::string grammar_file() const {
    return grammar_fd < 0 ? std::string{}
                          : "/proc/self/fd/" + std::to_string(grammar_fd);
  }
  std::map<std::string, std::unique_ptr<run>> runs;
  uint64_t next_gen = 0;
  std::mt19937_64 rng{std::random_device{}()};

  /// Runs `fn` on the engine's thread, later (never inside the caller).
  void post(std::function<void()> fn);
  /// Runs `fn` on the engine's thread after `delay`; the source, to cancel.
  GSource* after(std::chrono::milliseconds delay, std::function<void()> fn);
  /// Runs `fn` on the engine's thread every `period`, until cancelled.
  GSource* every(std::chrono::milliseconds period, std::function<void()> fn);
  run* find(const std::string& run_id, uint64_t gen);
  peer* find(const peer_ref& ref);

  void connect(run& r);
  void reconnect_later(run& r);
  void on_message(run& r, const std::string& text);
  void on_welcome(run& r, const nlohmann::json& msg);
  void on_signal(run& r, const std::string& from, const nlohmann::json& data);
  void refused(run& r, const std::string& code);
  void flush(run& r);
  /// Ends a run (by value: the caller's strings may be the run's own).
  void end(std::string run_id, std::string fenced_why);
};

void cancel_source(GSource*& source);

} // namespace vb::voice
