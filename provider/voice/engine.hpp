// The bots' voice (SPEC §9): each run is a WebRTC voice peer made with
// GStreamer's webrtcbin, signaling on the lobby WebSocket like a page. One
// GLib main loop on its own thread holds every run, its socket and its peer
// connections; callers only post to it, so a CAF actor never waits on it.
// No GStreamer or GLib header here: only engine.cpp and peer.cpp see them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace vb::voice {

/// What a run's voice needs: who it is, where to signal, how it behaves.
struct run_spec {
  std::string run_id;
  std::string bot_name; // echo, greeter, listener
  std::string lobby_id;
  std::string session_id;
  std::string nick;
  std::string token;      // the session token of the dispatch (a secret)
  std::string server_url; // http(s)://host:port of the server
};

struct engine_config {
  /// ICE host addresses to gather on (libnice's add-local-ip-address);
  /// empty: libnice finds them (it skips loopback).
  std::vector<std::string> ice_addresses;
  /// How late `echo` sends a person's voice back.
  std::chrono::milliseconds echo_delay{500};
  /// A connection not up this long after it was made is made anew (as
  /// after ICE failure): ICE can stay "checking" for ever when no pair
  /// ever answers, and only `failed` would start again.
  std::chrono::milliseconds connect_timeout{20000};
  /// The phrases `listener` recognizes (one per entry, lower case, words
  /// of pocketsphinx's en-us dictionary).
  std::vector<std::string> listener_phrases;
};

/// A bot writes a chat line (listener): lobby id, its session id, text.
using say_fn = std::function<void(const std::string&, const std::string&,
                                  const std::string&)>;
/// A run lost its voice for good (its token refused, or replaced): the
/// member runs elsewhere now. Run id, why.
using fenced_fn = std::function<void(const std::string&, const std::string&)>;

/// What a run's voice is doing, for logs, metrics and tests.
struct run_status {
  std::string run_id;
  bool welcomed = false;
  size_t peers = 0;     // peer connections
  size_t connected = 0; // of them, connected
};

class engine {
public:
  explicit engine(engine_config config);
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  /// Where it reports (called on the engine's thread); before any start.
  void on_events(say_fn say, fenced_fn fenced);
  /// Ends every run's voice and the engine's thread (the destructor does
  /// too); nothing is reported after it.
  void shutdown();
  /// Starts (or, for a run id it has, keeps) a run's voice.
  void start(run_spec spec);
  /// Ends a run's voice: its peer connections close, its socket closes.
  void stop(const std::string& run_id);
  /// Asks for every run's status; `done` is called on the engine's thread.
  void status(std::function<void(std::vector<run_status>)> done);

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

/// Whether this machine has the GStreamer elements the voice needs; `why`
/// names the missing ones. Initializes GStreamer.
bool available(std::string& why);

/// The pocketsphinx dictionary's words a phrase list uses that it lacks.
std::vector<std::string> unknown_words(const std::vector<std::string>& phrases);

/// A finite state grammar (pocketsphinx's FSG format) that takes one of
/// the phrases per utterance.
std::string phrase_grammar(const std::vector<std::string>& phrases);

} // namespace vb::voice
