// One peer connection's signaling by SPEC §9's rules ("perfect negotiation",
// the smaller session_id polite), without GStreamer: the inputs are what the
// lobby socket and webrtcbin report, the outputs the steps the media side
// takes, in order. webrtcbin has no rollback, so a polite peer that yields in
// a glare, or the other side's ICE restart, starts a fresh connection
// (`reset`) and answers there.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace vb::voice {

enum class step_kind {
  create_offer,  // ask the connection for an offer (offer_created follows)
  create_answer, // ask for an answer to the remote offer (answer_created)
  set_local,     // apply sdp_type/sdp as the local description
  set_remote,    // apply sdp_type/sdp as the remote description
  add_candidate, // a remote ICE candidate: mline, candidate
  send,          // send `data` to the peer (a signal)
  reset,         // drop the connection and make a fresh one
};

struct step {
  explicit step(step_kind k) : kind(k) {}
  step_kind kind;
  std::string sdp_type;
  std::string sdp;
  unsigned mline = 0;
  std::string candidate;
  nlohmann::json data;
};

const char* to_string(step_kind x);

enum class signaling_state { stable, have_local_offer, have_remote_offer, closed };

class negotiation {
public:
  negotiation(std::string me, std::string peer);

  const std::string& peer() const { return peer_; }
  bool polite() const { return polite_; }
  signaling_state state() const { return state_; }
  /// How many times the connection was made anew (glare, ICE restart).
  uint32_t resets() const { return resets_; }

  /// This side calls (SPEC §9: a peer offers to those in its welcome).
  std::vector<step> call();
  /// An offer still unanswered is sent again: the first may have met a
  /// peer that was offline for a moment.
  std::vector<step> resend_offer() const;
  std::vector<step> offer_created(const std::string& sdp);
  std::vector<step> answer_created(const std::string& sdp);
  std::vector<step> local_candidate(unsigned mline, const std::string& candidate);
  /// A signal's `data` from the peer: a description or a candidate.
  std::vector<step> on_signal(const nlohmann::json& data);
  /// ICE failed: a fresh connection and a new offer.
  std::vector<step> failed();
  /// The run stops or the peer left: nothing is done after this.
  void stop() { state_ = signaling_state::closed; }

private:
  std::vector<step> on_offer(const std::string& sdp);
  std::vector<step> on_answer(const std::string& sdp);
  std::vector<step> on_candidate(const nlohmann::json& c);
  void flush_candidates(std::vector<step>& out);
  std::string mid_of(unsigned mline) const;

  std::string me_;
  std::string peer_;
  bool polite_;
  signaling_state state_ = signaling_state::stable;
  bool making_offer_ = false;
  bool ignore_offer_ = false;
  bool remote_set_ = false;
  uint32_t resets_ = 0;
  std::string remote_ufrag_;
  std::string last_remote_offer_;
  std::string local_offer_;
  std::string local_answer_;
  std::vector<std::pair<unsigned, std::string>> pending_;
};

/// The `a=ice-ufrag:` of an SDP (its first), or "".
std::string ice_ufrag(const std::string& sdp);

} // namespace vb::voice
