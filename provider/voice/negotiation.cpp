#include "provider/voice/negotiation.hpp"

#include <sstream>

namespace vb::voice {

namespace {

/// Candidates kept before the remote description: a peer sends a few dozen.
constexpr size_t max_pending = 256;

step describe(const std::string& type, const std::string& sdp) {
  step s{step_kind::send};
  s.data = {{"description", {{"type", type}, {"sdp", sdp}}}};
  return s;
}

step apply(step_kind kind, const std::string& type, const std::string& sdp) {
  step s{kind};
  s.sdp_type = type;
  s.sdp = sdp;
  return s;
}

} // namespace

const char* to_string(step_kind x) {
  switch (x) {
    case step_kind::create_offer: return "create_offer";
    case step_kind::create_answer: return "create_answer";
    case step_kind::set_local: return "set_local";
    case step_kind::set_remote: return "set_remote";
    case step_kind::add_candidate: return "add_candidate";
    case step_kind::send: return "send";
    case step_kind::reset: return "reset";
  }
  return "?";
}

std::string ice_ufrag(const std::string& sdp) {
  static const std::string key = "a=ice-ufrag:";
  auto i = sdp.find(key);
  if (i == std::string::npos)
    return {};
  auto start = i + key.size();
  auto end = sdp.find_first_of("\r\n", start);
  return sdp.substr(start, end == std::string::npos ? end : end - start);
}

negotiation::negotiation(std::string me, std::string peer)
  : me_(std::move(me)), peer_(std::move(peer)), polite_(me_ < peer_) {
}

std::vector<step> negotiation::call() {
  if (state_ != signaling_state::stable || making_offer_)
    return {};
  making_offer_ = true;
  return {step{step_kind::create_offer}};
}

std::vector<step> negotiation::resend_offer() const {
  if (state_ != signaling_state::have_local_offer)
    return {};
  return {describe("offer", local_offer_)};
}

std::vector<step> negotiation::offer_created(const std::string& sdp) {
  if (state_ == signaling_state::closed || !making_offer_)
    return {}; // the connection it came from was reset meanwhile
  making_offer_ = false;
  state_ = signaling_state::have_local_offer;
  local_offer_ = sdp;
  // Sent before it is applied, so it leaves before the first candidate.
  return {describe("offer", sdp), apply(step_kind::set_local, "offer", sdp)};
}

std::vector<step> negotiation::answer_created(const std::string& sdp) {
  if (state_ != signaling_state::have_remote_offer)
    return {};
  state_ = signaling_state::stable;
  local_answer_ = sdp;
  return {describe("answer", sdp), apply(step_kind::set_local, "answer", sdp)};
}

std::vector<step> negotiation::local_candidate(unsigned mline,
                                               const std::string& candidate) {
  if (state_ == signaling_state::closed)
    return {};
  step s{step_kind::send};
  nlohmann::json c{{"candidate", candidate}, {"sdpMLineIndex", mline}};
  if (auto mid = mid_of(mline); !mid.empty())
    c["sdpMid"] = mid;
  s.data = {{"candidate", std::move(c)}};
  return {std::move(s)};
}

std::vector<step> negotiation::on_signal(const nlohmann::json& data) {
  if (state_ == signaling_state::closed || !data.is_object())
    return {};
  if (auto d = data.find("description"); d != data.end() && d->is_object()) {
    auto type = d->value("type", std::string{});
    auto sdp = d->value("sdp", std::string{});
    if (sdp.empty())
      return {};
    if (type == "offer")
      return on_offer(sdp);
    if (type == "answer")
      return on_answer(sdp);
    return {};
  }
  if (auto c = data.find("candidate"); c != data.end() && c->is_object())
    return on_candidate(*c);
  return {};
}

std::vector<step> negotiation::on_offer(const std::string& sdp) {
  // The same offer again (it resends an offer until answered): the answer
  // again.
  if (sdp == last_remote_offer_ && state_ == signaling_state::stable
      && !local_answer_.empty())
    return {describe("answer", local_answer_)};
  bool collision = making_offer_ || state_ == signaling_state::have_local_offer;
  ignore_offer_ = !polite_ && collision;
  if (ignore_offer_)
    return {};
  auto ufrag = ice_ufrag(sdp);
  bool restart = remote_set_ && ufrag != remote_ufrag_;
  std::vector<step> out;
  if (collision || restart || state_ == signaling_state::have_remote_offer) {
    out.push_back(step{step_kind::reset});
    ++resets_;
    making_offer_ = false;
    local_offer_.clear();
  }
  state_ = signaling_state::have_remote_offer;
  remote_set_ = true;
  remote_ufrag_ = ufrag;
  last_remote_offer_ = sdp;
  local_answer_.clear();
  out.push_back(apply(step_kind::set_remote, "offer", sdp));
  out.push_back(step{step_kind::create_answer});
  flush_candidates(out);
  return out;
}

std::vector<step> negotiation::on_answer(const std::string& sdp) {
  if (state_ != signaling_state::have_local_offer)
    return {}; // stale, or repeated
  state_ = signaling_state::stable;
  remote_set_ = true;
  remote_ufrag_ = ice_ufrag(sdp);
  std::vector<step> out{apply(step_kind::set_remote, "answer", sdp)};
  flush_candidates(out);
  return out;
}

std::vector<step> negotiation::on_candidate(const nlohmann::json& c) {
  if (ignore_offer_)
    return {}; // belongs to the offer it ignored
  auto text = c.value("candidate", std::string{});
  auto index = c.find("sdpMLineIndex");
  if (text.empty() || index == c.end() || !index->is_number_unsigned())
    return {}; // the end of candidates, or one it cannot place
  auto mline = index->get<unsigned>();
  if (!remote_set_) {
    if (pending_.size() < max_pending)
      pending_.emplace_back(mline, std::move(text));
    return {};
  }
  step s{step_kind::add_candidate};
  s.mline = mline;
  s.candidate = std::move(text);
  return {std::move(s)};
}

std::vector<step> negotiation::failed() {
  if (state_ == signaling_state::closed)
    return {};
  ++resets_;
  state_ = signaling_state::stable;
  remote_set_ = false;
  pending_.clear();
  local_offer_.clear();
  local_answer_.clear();
  last_remote_offer_.clear();
  making_offer_ = true;
  return {step{step_kind::reset}, step{step_kind::create_offer}};
}

void negotiation::flush_candidates(std::vector<step>& out) {
  for (auto& [mline, text] : pending_) {
    step s{step_kind::add_candidate};
    s.mline = mline;
    s.candidate = std::move(text);
    out.push_back(std::move(s));
  }
  pending_.clear();
}

std::string negotiation::mid_of(unsigned mline) const {
  const auto& sdp = local_offer_.empty() ? local_answer_ : local_offer_;
  std::istringstream in{sdp};
  std::string line;
  int section = -1;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.rfind("m=", 0) == 0)
      ++section;
    else if (section == static_cast<int>(mline) && line.rfind("a=mid:", 0) == 0)
      return line.substr(6);
  }
  return {};
}

} // namespace vb::voice
