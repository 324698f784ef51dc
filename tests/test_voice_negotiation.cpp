// The voice's negotiation rules (provider/voice/negotiation), without
// GStreamer or a network: what a bot does for each signal and callback.
#include <catch2/catch.hpp>

#include "provider/voice/negotiation.hpp"

using namespace vb::voice;
using json = nlohmann::json;

namespace {

std::string sdp(const std::string& ufrag, const std::string& mid = "audio0") {
  return "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
         "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:" + ufrag
         + "\r\na=mid:" + mid + "\r\n";
}

json offer(const std::string& text) {
  return {{"description", {{"type", "offer"}, {"sdp", text}}}};
}

json answer(const std::string& text) {
  return {{"description", {{"type", "answer"}, {"sdp", text}}}};
}

json candidate(const std::string& text, unsigned mline = 0) {
  return {{"candidate", {{"candidate", text}, {"sdpMid", "0"}, {"sdpMLineIndex", mline}}}};
}

std::vector<step_kind> kinds(const std::vector<step>& steps) {
  std::vector<step_kind> out;
  for (auto& s : steps)
    out.push_back(s.kind);
  return out;
}

using K = step_kind;

} // namespace

TEST_CASE("the smaller session id is polite", "[voice]") {
  CHECK(negotiation{"a", "b"}.polite());
  CHECK_FALSE(negotiation{"b", "a"}.polite());
}

TEST_CASE("a bot that calls: offer sent before it is applied, then the answer",
          "[voice]") {
  negotiation n{"bot", "person"};
  CHECK(kinds(n.call()) == std::vector<K>{K::create_offer});
  CHECK(n.call().empty()); // one offer at a time
  auto out = n.offer_created(sdp("mine"));
  REQUIRE(kinds(out) == std::vector<K>{K::send, K::set_local});
  CHECK(out[0].data["description"]["type"] == "offer");
  CHECK(out[0].data["description"]["sdp"] == sdp("mine"));
  CHECK(out[1].sdp_type == "offer");
  CHECK(n.state() == signaling_state::have_local_offer);
  // Unanswered, it is sent again; answered, not any more.
  CHECK(kinds(n.resend_offer()) == std::vector<K>{K::send});
  out = n.on_signal(answer(sdp("theirs")));
  REQUIRE(kinds(out) == std::vector<K>{K::set_remote});
  CHECK(out[0].sdp_type == "answer");
  CHECK(n.state() == signaling_state::stable);
  CHECK(n.resend_offer().empty());
  // A repeated answer changes nothing.
  CHECK(n.on_signal(answer(sdp("theirs"))).empty());
}

TEST_CASE("a bot that is called answers, and candidates wait for the offer",
          "[voice]") {
  negotiation n{"bot", "person"};
  // A candidate before its offer is kept, then added after the offer.
  CHECK(n.on_signal(candidate("candidate:1 1 udp 1 127.0.0.1 5000 typ host")).empty());
  auto out = n.on_signal(offer(sdp("theirs")));
  REQUIRE(kinds(out) == std::vector<K>{K::set_remote, K::create_answer, K::add_candidate});
  CHECK(out[2].candidate == "candidate:1 1 udp 1 127.0.0.1 5000 typ host");
  CHECK(out[2].mline == 0);
  CHECK(n.state() == signaling_state::have_remote_offer);
  out = n.answer_created(sdp("mine", "a0"));
  REQUIRE(kinds(out) == std::vector<K>{K::send, K::set_local});
  CHECK(out[0].data["description"]["type"] == "answer");
  CHECK(n.state() == signaling_state::stable);
  // Later candidates are added at once; its own carry the mid of its SDP.
  CHECK(kinds(n.on_signal(candidate("candidate:2 1 udp 1 127.0.0.1 5001 typ host")))
        == std::vector<K>{K::add_candidate});
  out = n.local_candidate(0, "candidate:9 1 UDP 5 127.0.0.1 6000 typ host");
  REQUIRE(kinds(out) == std::vector<K>{K::send});
  CHECK(out[0].data == json{{"candidate",
                             {{"candidate", "candidate:9 1 UDP 5 127.0.0.1 6000 typ host"},
                              {"sdpMLineIndex", 0},
                              {"sdpMid", "a0"}}}});
  // The end of candidates and malformed ones are dropped.
  CHECK(n.on_signal(candidate("")).empty());
  CHECK(n.on_signal(json{{"candidate", {{"candidate", "x"}}}}).empty());
  CHECK(n.on_signal(json{{"nonsense", 1}}).empty());
  CHECK(n.on_signal(json::array()).empty());
}

TEST_CASE("the same offer again gets the same answer again", "[voice]") {
  negotiation n{"bot", "person"};
  n.on_signal(offer(sdp("theirs")));
  n.answer_created(sdp("mine"));
  auto out = n.on_signal(offer(sdp("theirs")));
  REQUIRE(kinds(out) == std::vector<K>{K::send});
  CHECK(out[0].data["description"]["type"] == "answer");
  CHECK(out[0].data["description"]["sdp"] == sdp("mine"));
  CHECK(n.resets() == 0);
}

TEST_CASE("glare: the impolite side ignores the offer and its candidates",
          "[voice]") {
  negotiation n{"b-bot", "a-person"}; // b > a: impolite
  REQUIRE_FALSE(n.polite());
  n.call();
  n.offer_created(sdp("mine"));
  CHECK(n.on_signal(offer(sdp("theirs"))).empty());
  CHECK(n.on_signal(candidate("candidate:1 1 udp 1 127.0.0.1 5000 typ host")).empty());
  CHECK(n.state() == signaling_state::have_local_offer);
  // Its answer to our offer goes on as usual.
  CHECK(kinds(n.on_signal(answer(sdp("theirs2")))) == std::vector<K>{K::set_remote});
}

TEST_CASE("glare: the polite side yields with a fresh connection and answers",
          "[voice]") {
  negotiation n{"a-bot", "b-person"};
  REQUIRE(n.polite());
  n.call();
  // Its offer crossed ours while ours was being made.
  auto out = n.on_signal(offer(sdp("theirs")));
  CHECK(kinds(out) == std::vector<K>{K::reset, K::set_remote, K::create_answer});
  CHECK(n.resets() == 1);
  // The offer of the connection it dropped arrives late: not sent.
  CHECK(n.offer_created(sdp("old")).empty());
  CHECK(kinds(n.answer_created(sdp("mine"))) == std::vector<K>{K::send, K::set_local});
  CHECK(n.state() == signaling_state::stable);
}

TEST_CASE("an ICE restart by the other side makes a fresh connection; a "
          "renegotiation does not", "[voice]") {
  negotiation n{"bot", "person"};
  n.on_signal(offer(sdp("u1")));
  n.answer_created(sdp("mine"));
  // Same credentials, another SDP: a renegotiation on the same connection.
  auto renegotiation = sdp("u1") + "a=sendrecv\r\n";
  CHECK(kinds(n.on_signal(offer(renegotiation)))
        == std::vector<K>{K::set_remote, K::create_answer});
  n.answer_created(sdp("mine2"));
  // New credentials: an ICE restart.
  CHECK(kinds(n.on_signal(offer(sdp("u2"))))
        == std::vector<K>{K::reset, K::set_remote, K::create_answer});
  CHECK(n.resets() == 1);
}

TEST_CASE("ICE failed: a fresh connection and a new offer", "[voice]") {
  negotiation n{"bot", "person"};
  n.call();
  n.offer_created(sdp("mine"));
  n.on_signal(answer(sdp("theirs")));
  CHECK(kinds(n.failed()) == std::vector<K>{K::reset, K::create_offer});
  CHECK(n.resets() == 1);
  // Candidates for the dropped connection's remote side wait for the next.
  CHECK(n.on_signal(candidate("candidate:1 1 udp 1 127.0.0.1 5000 typ host")).empty());
  CHECK(kinds(n.offer_created(sdp("mine2"))) == std::vector<K>{K::send, K::set_local});
  CHECK(kinds(n.on_signal(answer(sdp("theirs2"))))
        == std::vector<K>{K::set_remote, K::add_candidate});
}

TEST_CASE("a run stopped mid-negotiation does nothing more", "[voice]") {
  negotiation n{"bot", "person"};
  n.call();
  n.stop();
  CHECK(n.state() == signaling_state::closed);
  CHECK(n.offer_created(sdp("mine")).empty());
  CHECK(n.on_signal(offer(sdp("theirs"))).empty());
  CHECK(n.on_signal(answer(sdp("theirs"))).empty());
  CHECK(n.local_candidate(0, "candidate:1").empty());
  CHECK(n.failed().empty());
  CHECK(n.call().empty());
  CHECK(n.resend_offer().empty());

  negotiation m{"bot", "person"};
  m.on_signal(offer(sdp("theirs")));
  m.stop();
  CHECK(m.answer_created(sdp("mine")).empty());
}

TEST_CASE("ice_ufrag reads the first credentials of an SDP", "[voice]") {
  CHECK(ice_ufrag(sdp("abc")) == "abc");
  CHECK(ice_ufrag("v=0\n") == "");
}
