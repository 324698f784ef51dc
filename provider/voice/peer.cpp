// One peer connection of a bot run: a pipeline with webrtcbin, the bot's
// voice (a live mixer that starts silent) into it, and what the bot does
// with what it hears: echo sends it back late (through an appsink and an
// appsrc, so the graph has no loop), listener recognizes it,
// greeter only speaks. webrtcbin's callbacks come on GStreamer's threads
// and are posted to the engine's thread (SPEC §9; STYLE's verified facts).
#include "provider/voice/internal.hpp"

#include <spdlog/spdlog.h>

namespace vb::voice {

namespace {

constexpr const char* send_chain =
  "audiotestsrc is-live=true wave=silence ! "
  "audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved ! "
  "audiomixer name=mix ! audioconvert ! audioresample ! "
  "audio/x-raw,rate=48000,channels=1 ! opusenc audio-type=voice ! "
  "rtpopuspay pt=111 ! "
  "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! "
  "queue ! webrtcbin name=wb bundle-policy=max-bundle";

// Browsers take Opus only as two channels (opus/48000/2) in the SDP.
constexpr const char* rtp_caps =
  "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,"
  "encoding-params=(string)2";

/// What a GStreamer thread needs to link what the peer sends: no engine state.
struct media_ref {
  peer_ref ref;
  std::string bot;
  std::chrono::milliseconds echo_delay;
  std::string grammar_file;
};

template <class T>
void free_ref(gpointer data, GClosure* = nullptr) {
  delete static_cast<T*>(data);
}

/// Back on the engine's thread, with the peer if it is still there.
template <class F>
void on_peer(const peer_ref& ref, F fn) {
  auto* e = ref.core;
  e->post([e, ref, fn = std::move(fn)]() mutable {
    if (auto* p = e->find(ref))
      fn(*p);
  });
}

GstClockTime running_time(GstElement* pipeline) {
  auto* clock = gst_element_get_clock(pipeline);
  if (!clock)
    return 0;
  auto now = gst_clock_get_time(clock);
  gst_object_unref(clock);
  auto base = gst_element_get_base_time(pipeline);
  return now > base ? now - base : 0;
}

/// Speech starts when its first buffer comes (espeak-ng takes a while on a
/// busy machine): its timestamps start at 0, so the pad's offset puts that
/// buffer a little after now on the live mixer's clock; a fixed offset
/// taken earlier would make the mixer drop it all as late. On a src pad: an
/// offset moves the segment, which a src pad sends again before this buffer.
GstPadProbeReturn place_speech(GstPad* pad, GstPadProbeInfo* info, gpointer data) {
  auto* buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  auto* pipeline = static_cast<GstElement*>(data);
  auto pts = GST_BUFFER_PTS_IS_VALID(buffer) ? GST_BUFFER_PTS(buffer) : 0;
  gst_pad_set_offset(pad, static_cast<gint64>(running_time(pipeline) + 60 * GST_MSECOND)
                            - static_cast<gint64>(pts));
  return GST_PAD_PROBE_REMOVE;
}

/// Holds speech made in advance until it is released.
GstPadProbeReturn hold(GstPad*, GstPadProbeInfo*, gpointer) {
  return GST_PAD_PROBE_OK;
}

/// Links `branch` (a bin with a src ghost pad) into the mixer, `offset`
/// later on the pipeline's clock than its own timestamps say.
void into_mixer(GstElement* pipeline, GstElement* branch, GstClockTime offset) {
  auto* mixer = gst_bin_get_by_name(GST_BIN(pipeline), "mix");
  if (!mixer)
    return;
  auto* sink = gst_element_request_pad_simple(mixer, "sink_%u");
  auto* src = gst_element_get_static_pad(branch, "src");
  gst_pad_set_offset(sink, static_cast<gint64>(offset));
  gst_pad_link(src, sink);
  gst_object_unref(src);
  gst_object_unref(sink);
  gst_object_unref(mixer);
}

/// The description of what a bot does with a person's voice.
std::string hearing(const std::string& bot) {
  const std::string decode =
    "queue ! rtpopusdepay ! opusdec ! audioconvert ! audioresample ! ";
  if (bot == "echo")
    return decode
           + "audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved ! "
             "appsink name=heard sync=false async=false max-buffers=200 drop=true";
  if (bot == "listener")
    return decode
           + "audio/x-raw,format=S16LE,rate=16000,channels=1 ! "
             "queue leaky=downstream max-size-time=2000000000 max-size-buffers=0 "
             "max-size-bytes=0 ! pocketsphinx name=ears ! fakesink sync=false async=false";
  return "queue ! fakesink sync=false async=false";
}

/// echo's way back: what it heard, pushed into the mixer by an appsrc, so
/// that webrtcbin's output never links back to its own input (a loop in the
/// graph GStreamer refuses to sort at every state change).
constexpr const char* echo_back =
  "appsrc name=again is-live=true format=time max-bytes=480000 "
  "caps=\"audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved\" ! "
  "queue max-size-time=3000000000 max-size-buffers=0 max-size-bytes=0";

// On a streaming thread: a decoded buffer goes to the appsrc, stamped with
// its running time (the appsrc's segment starts at 0, so that is its time).
GstFlowReturn pass_back(GstAppSink* sink, gpointer data) {
  auto* again = static_cast<GstAppSrc*>(data);
  auto* sample = gst_app_sink_pull_sample(sink);
  if (!sample)
    return GST_FLOW_EOS;
  auto* buffer = gst_sample_get_buffer(sample);
  auto* segment = gst_sample_get_segment(sample);
  if (buffer && segment && GST_BUFFER_PTS_IS_VALID(buffer)) {
    auto at = gst_segment_to_running_time(segment, GST_FORMAT_TIME, GST_BUFFER_PTS(buffer));
    if (GST_CLOCK_TIME_IS_VALID(at)) {
      auto* copy = gst_buffer_copy(buffer); // shares the memory
      GST_BUFFER_PTS(copy) = at;
      GST_BUFFER_DTS(copy) = GST_CLOCK_TIME_NONE;
      gst_app_src_push_buffer(again, copy);
    }
  }
  gst_sample_unref(sample);
  return GST_FLOW_OK;
}

/// Makes echo's way back into the mixer, `delay` late, fed by `heard`.
void echo_into_mixer(GstElement* pipeline, GstElement* heard, GstClockTime delay) {
  GError* err = nullptr;
  auto* back = gst_parse_bin_from_description(echo_back, TRUE, &err);
  if (!back) {
    spdlog::error("voice: cannot echo: {}", err ? err->message : "?");
    if (err)
      g_error_free(err);
    return;
  }
  gst_bin_add(GST_BIN(pipeline), back);
  into_mixer(pipeline, back, delay);
  gst_element_sync_state_with_parent(back);
  auto* again = gst_bin_get_by_name(GST_BIN(back), "again");
  GstAppSinkCallbacks callbacks{};
  callbacks.new_sample = pass_back;
  gst_app_sink_set_callbacks(GST_APP_SINK(heard), &callbacks, again, gst_object_unref);
}

// On a streaming thread: what the person sends arrived.
void on_pad_added(GstElement* webrtc, GstPad* pad, gpointer data) {
  auto* m = static_cast<media_ref*>(data);
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC)
    return;
  auto* pipeline = GST_ELEMENT(gst_element_get_parent(webrtc));
  if (!pipeline)
    return;
  GError* err = nullptr;
  auto* branch = gst_parse_bin_from_description(hearing(m->bot).c_str(), TRUE, &err);
  if (!branch) {
    spdlog::error("voice: cannot hear: {}", err ? err->message : "?");
    if (err)
      g_error_free(err);
    gst_object_unref(pipeline);
    return;
  }
  if (auto* ears = gst_bin_get_by_name(GST_BIN(branch), "ears")) {
    if (!m->grammar_file.empty())
      g_object_set(ears, "fsg", m->grammar_file.c_str(), nullptr);
    gst_object_unref(ears);
  }
  gst_bin_add(GST_BIN(pipeline), branch);
  if (auto* heard = gst_bin_get_by_name(GST_BIN(branch), "heard")) {
    echo_into_mixer(pipeline, heard,
                    std::chrono::duration_cast<std::chrono::nanoseconds>(m->echo_delay).count());
    gst_object_unref(heard);
  }
  gst_element_sync_state_with_parent(branch);
  auto* sink = gst_element_get_static_pad(branch, "sink");
  if (gst_pad_link(pad, sink) != GST_PAD_LINK_OK)
    spdlog::warn("voice: cannot link what {} sends", m->ref.peer_id);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
}

void on_negotiation_needed(GstElement*, gpointer data) {
  on_peer(*static_cast<peer_ref*>(data), [](peer& p) {
    p.negotiation_needed = true;
    if (p.wants_to_call) {
      p.wants_to_call = false;
      p.execute({step{step_kind::create_offer}});
    }
  });
}

void on_ice_candidate(GstElement*, guint mline, gchar* candidate, gpointer data) {
  on_peer(*static_cast<peer_ref*>(data),
          [mline, c = std::string(candidate)](peer& p) {
            p.execute(p.neg.local_candidate(mline, c));
          });
}

void on_connection_state(GstElement* webrtc, GParamSpec*, gpointer data) {
  GstWebRTCPeerConnectionState state;
  g_object_get(webrtc, "connection-state", &state, nullptr);
  on_peer(*static_cast<peer_ref*>(data), [state](peer& p) { p.on_state(state); });
}

/// The SDP of a create-offer or create-answer reply, or "".
std::string reply_sdp(GstPromise* promise, const char* field) {
  std::string text;
  if (gst_promise_wait(promise) != GST_PROMISE_RESULT_REPLIED)
    return text;
  auto* reply = gst_promise_get_reply(promise);
  GstWebRTCSessionDescription* desc = nullptr;
  if (reply)
    gst_structure_get(reply, field, GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &desc,
                      nullptr);
  if (desc) {
    auto* sdp = gst_sdp_message_as_text(desc->sdp);
    text = sdp;
    g_free(sdp);
    gst_webrtc_session_description_free(desc);
  }
  return text;
}

/// A create-offer or create-answer reply goes to the negotiation's `made`.
void on_created(GstPromise* promise, gpointer data, const char* field,
                std::vector<step> (negotiation::*made)(const std::string&)) {
  auto sdp = reply_sdp(promise, field);
  gst_promise_unref(promise);
  if (sdp.empty())
    return;
  on_peer(*static_cast<peer_ref*>(data),
          [sdp, made](peer& p) { p.execute((p.neg.*made)(sdp)); });
}

void on_offer_created(GstPromise* promise, gpointer data) {
  on_created(promise, data, "offer", &negotiation::offer_created);
}

void on_answer_created(GstPromise* promise, gpointer data) {
  on_created(promise, data, "answer", &negotiation::answer_created);
}

gboolean on_bus(GstBus*, GstMessage* msg, gpointer data) {
  auto& ref = *static_cast<peer_ref*>(data);
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
    GError* err = nullptr;
    gst_message_parse_error(msg, &err, nullptr);
    spdlog::warn("voice of run {}: the connection to {}: {}", ref.run_id,
                 ref.peer_id, err ? err->message : "?");
    if (err)
      g_error_free(err);
  } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ELEMENT) {
    auto* s = gst_message_get_structure(msg);
    gboolean final = FALSE;
    if (s && gst_structure_has_name(s, "pocketsphinx")
        && gst_structure_get_boolean(s, "final", &final) && final) {
      if (auto* hyp = gst_structure_get_string(s, "hypothesis"); hyp && *hyp)
        if (auto* p = ref.core->find(ref))
          p->heard(hyp);
    }
  }
  return G_SOURCE_CONTINUE;
}

GstWebRTCSessionDescription* description(const std::string& type,
                                         const std::string& sdp) {
  GstSDPMessage* msg = nullptr;
  gst_sdp_message_new_from_text(sdp.c_str(), &msg);
  if (!msg)
    return nullptr;
  return gst_webrtc_session_description_new(
    type == "offer" ? GST_WEBRTC_SDP_TYPE_OFFER : GST_WEBRTC_SDP_TYPE_ANSWER, msg);
}

} // namespace

peer::peer(run& r, peer_info w)
  : owner(r), who(std::move(w)), neg(r.spec.session_id, who.session_id) {
}

peer::~peer() {
  neg.stop();
  teardown();
}

peer_ref peer::ref() const {
  return {&owner.core, owner.spec.run_id, owner.gen, who.session_id, gen};
}

void peer::build() {
  ++gen;
  negotiation_needed = false;
  wants_to_call = false;
  connected = false;
  GError* err = nullptr;
  pipeline = gst_parse_launch(send_chain, &err);
  if (!pipeline) {
    spdlog::error("voice of run {}: cannot make a connection: {}",
                  owner.spec.run_id, err ? err->message : "?");
    if (err)
      g_error_free(err);
    return;
  }
  if (err) // a warning: the pipeline was made all the same
    g_error_free(err);
  webrtc = gst_bin_get_by_name(GST_BIN(pipeline), "wb");
  mixer = gst_bin_get_by_name(GST_BIN(pipeline), "mix");
  auto& config = owner.core.config;
  if (!config.ice_addresses.empty()) {
    GstWebRTCICE* ice = nullptr;
    g_object_get(webrtc, "ice-agent", &ice, nullptr);
    if (ice) {
      for (auto& a : config.ice_addresses) {
        gboolean ok = FALSE;
        g_signal_emit_by_name(ice, "add-local-ip-address", a.c_str(), &ok);
      }
      g_object_set(ice, "ice-tcp", FALSE, nullptr);
      gst_object_unref(ice);
    }
  }
  // The codec is known before any caps flow, so an answer can be made at once.
  if (auto* sink = gst_element_get_static_pad(webrtc, "sink_0")) {
    GstWebRTCRTPTransceiver* t = nullptr;
    g_object_get(sink, "transceiver", &t, nullptr);
    if (t) {
      auto* caps = gst_caps_from_string(rtp_caps);
      g_object_set(t, "codec-preferences", caps, "direction",
                   GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDRECV, nullptr);
      gst_caps_unref(caps);
      gst_object_unref(t);
    }
    gst_object_unref(sink);
  }
  auto r = ref();
  auto connect = [&](const char* signal, GCallback cb) {
    g_signal_connect_data(webrtc, signal, cb, new peer_ref(r), free_ref<peer_ref>,
                          GConnectFlags(0));
  };
  connect("on-negotiation-needed", G_CALLBACK(on_negotiation_needed));
  connect("on-ice-candidate", G_CALLBACK(on_ice_candidate));
  connect("notify::connection-state", G_CALLBACK(on_connection_state));
  g_signal_connect_data(webrtc, "pad-added", G_CALLBACK(on_pad_added),
                        new media_ref{r, owner.spec.bot_name, config.echo_delay,
                                      owner.core.grammar_file()},
                        free_ref<media_ref>, GConnectFlags(0));
  auto* bus = gst_element_get_bus(pipeline);
  bus_watch = gst_bus_create_watch(bus);
  g_source_set_callback(bus_watch, G_SOURCE_FUNC(on_bus), new peer_ref(r),
                        [](gpointer d) { delete static_cast<peer_ref*>(d); });
  g_source_attach(bus_watch, owner.core.context);
  gst_object_unref(bus);
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    spdlog::error("voice of run {}: the connection to {} did not start",
                  owner.spec.run_id, who.session_id);
  // greeter says hello to each person once a connection is up: made now,
  // so that espeak-ng's start is not on the way.
  if (owner.spec.bot_name == "greeter")
    prepare_speech("hello, " + who.nick);
  deadline = owner.core.after(config.connect_timeout, [r] {
    if (auto* p = r.core->find(r)) {
      cancel_source(p->deadline); // fired: our reference goes
      p->overdue();
    }
  });
}

void peer::teardown() {
  cancel_source(bus_watch);
  cancel_source(deadline);
  if (speech)
    gst_object_unref(speech);
  speech = nullptr;
  if (pipeline)
    gst_element_set_state(pipeline, GST_STATE_NULL);
  if (webrtc)
    gst_object_unref(webrtc);
  if (mixer)
    gst_object_unref(mixer);
  if (pipeline)
    gst_object_unref(pipeline);
  webrtc = mixer = pipeline = nullptr;
}

void peer::call() {
  execute(neg.call());
}

void peer::execute(std::vector<step> steps) {
  for (auto& s : steps) {
    if (s.kind == step_kind::reset) {
      spdlog::info("voice of run {}: a new connection to {} ({})",
                   owner.spec.run_id, who.session_id,
                   neg.resets() ? "glare or ICE restart" : "reset");
      teardown();
      build();
      continue;
    }
    if (s.kind == step_kind::send) {
      owner.send_signal(who.session_id, s.data);
      continue;
    }
    if (!webrtc)
      continue;
    switch (s.kind) {
      case step_kind::create_offer:
        if (!negotiation_needed) {
          wants_to_call = true; // webrtcbin is not ready to offer yet
          break;
        }
        g_signal_emit_by_name(webrtc, "create-offer", nullptr,
                              gst_promise_new_with_change_func(
                                on_offer_created, new peer_ref(ref()),
                                [](gpointer d) { delete static_cast<peer_ref*>(d); }));
        break;
      case step_kind::create_answer:
        g_signal_emit_by_name(webrtc, "create-answer", nullptr,
                              gst_promise_new_with_change_func(
                                on_answer_created, new peer_ref(ref()),
                                [](gpointer d) { delete static_cast<peer_ref*>(d); }));
        break;
      case step_kind::set_local:
      case step_kind::set_remote:
        if (auto* desc = description(s.sdp_type, s.sdp)) {
          g_signal_emit_by_name(webrtc,
                                s.kind == step_kind::set_local
                                  ? "set-local-description"
                                  : "set-remote-description",
                                desc, nullptr);
          gst_webrtc_session_description_free(desc);
        }
        break;
      case step_kind::add_candidate:
        g_signal_emit_by_name(webrtc, "add-ice-candidate", s.mline,
                              s.candidate.c_str());
        break;
      default:
        break;
    }
  }
}

void peer::on_state(GstWebRTCPeerConnectionState state) {
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED && !connected) {
    connected = true;
    cancel_source(deadline);
    spdlog::info("voice of run {}: connected to {}", owner.spec.run_id,
                 who.session_id);
    if (speech) {
      // The greeting made while the connection was set up goes now.
      gst_pad_add_probe(speech, GST_PAD_PROBE_TYPE_BUFFER, place_speech, pipeline, nullptr);
      gst_pad_remove_probe(speech, speech_hold);
      gst_object_unref(speech);
      speech = nullptr;
    }
  } else if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED) {
    connected = false;
    execute(neg.failed());
  }
}

void peer::overdue() {
  if (connected)
    return;
  spdlog::warn("voice of run {}: the connection to {} is not up after {} ms",
               owner.spec.run_id, who.session_id,
               owner.core.config.connect_timeout.count());
  execute(neg.failed());
}

void peer::prepare_speech(const std::string& text) {
  if (!pipeline)
    return;
  GError* err = nullptr;
  auto* branch = gst_parse_bin_from_description(
    "espeak name=voice ! audioconvert ! audioresample ! capsfilter "
    "caps=\"audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved\"",
    TRUE, &err);
  if (!branch) {
    spdlog::error("voice: cannot speak: {}", err ? err->message : "?");
    if (err)
      g_error_free(err);
    return;
  }
  auto* voice = gst_bin_get_by_name(GST_BIN(branch), "voice");
  g_object_set(voice, "text", text.c_str(), nullptr);
  gst_object_unref(voice);
  gst_bin_add(GST_BIN(pipeline), branch);
  into_mixer(pipeline, branch, 0);
  speech = gst_element_get_static_pad(branch, "src");
  speech_hold = gst_pad_add_probe(
    speech, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BLOCK | GST_PAD_PROBE_TYPE_BUFFER),
    hold, nullptr, nullptr);
  gst_element_sync_state_with_parent(branch);
}

void peer::heard(const std::string& hypothesis) {
  auto& say = owner.core.say;
  spdlog::info("voice of run {}: heard {} say '{}'", owner.spec.run_id,
               who.session_id, hypothesis);
  if (say)
    say(owner.spec.lobby_id, owner.spec.session_id, who.nick + " said: " + hypothesis);
}

} // namespace vb::voice
