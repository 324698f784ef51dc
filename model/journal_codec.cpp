#include "model/journal_codec.hpp"

#include <exception>
#include <thread>

#include <nlohmann/json.hpp>

#include "model/json.hpp"
#include "model/lobby_sax.hpp"
#include "model/record_codec.hpp"
#include "model/validate.hpp"

namespace vb {

using nlohmann::json;

namespace {

/// Parses a record: an object with a string "op".
bool parse_record(const std::string& payload, json& j, std::string& op,
                  std::string& why) {
  if (json_depth(payload) > max_json_depth) {
    why = "record nested too deep";
    return false;
  }
  j = json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    why = "record is not a JSON object";
    return false;
  }
  auto i = j.find("op");
  if (i == j.end() || !i->is_string()) {
    why = "record has no \"op\"";
    return false;
  }
  op = i->get<std::string>();
  return true;
}

const std::string& string_field(const json& j, const char* key) {
  static const std::string empty;
  auto i = j.find(key);
  if (i == j.end() || !i->is_string())
    return empty;
  return i->get_ref<const std::string&>();
}

} // namespace

std::string provider_put_record(const std::string& provider_json) {
  return op_record("put", {{"provider", provider_json}});
}

std::string provider_del_record(const std::string& provider_id) {
  return compact_json(json{{"op", "del"}, {"provider_id", provider_id}});
}

std::string provider_seen_record(
  const std::vector<std::pair<std::string, double>>& last_seen) {
  json seen = json::object();
  for (auto& [id, t] : last_seen)
    seen[id] = t;
  return compact_json(json{{"op", "seen"}, {"last_seen", std::move(seen)}});
}

std::string lobby_header_json(const lobby& header) {
  auto j = lobby_summary(header);
  j.erase("members");
  // Only when set: files without it (older ones) read as false.
  if (header.had_people)
    j["had_people"] = true;
  return compact_json(j);
}

std::string lobby_record(const lobby& header) {
  return op_record("lobby", {{"lobby", lobby_header_json(header)}});
}

std::string join_record(const std::string& lobby_id,
                        const std::string& session_json) {
  return op_record("join", {{"lobby_id", compact_json(json(lobby_id))},
                            {"session", session_json}});
}

std::string leave_record(const std::string& lobby_id,
                         const std::string& session_id) {
  return compact_json(
    json{{"op", "leave"}, {"lobby_id", lobby_id}, {"session_id", session_id}});
}

// -- providers ----------------------------------------------------------------

template <>
bool provider_replay::apply(const std::string& payload, std::string& why) {
  try {
    json j;
    std::string op;
    if (!parse_record(payload, j, op, why))
      return false;
    if (op == "put") {
      auto i = j.find("provider");
      if (i == j.end()) {
        why = "put record without a provider";
        return false;
      }
      auto p = i->get<provider>();
      if (p.provider_id.empty() || p.name.empty()) {
        why = "put record: provider without provider_id or name";
        return false;
      }
      items_.put(std::move(p));
      return true;
    }
    if (op == "del") {
      items_.erase(string_field(j, "provider_id"));
      return true;
    }
    if (op == "seen") {
      auto i = j.find("last_seen");
      if (i == j.end() || !i->is_object()) {
        why = "seen record without last_seen";
        return false;
      }
      for (auto& [id, t] : i->items())
        if (auto* p = items_.find(id); p && t.is_number())
          p->last_seen = t.get<double>();
      return true;
    }
    why = "unknown op \"" + op + "\"";
    return false;
  } catch (const std::exception& e) {
    why = std::string{"cannot decode record: "} + e.what();
    return false;
  }
}

// -- lobbies ------------------------------------------------------------------

lobby_replay::lobby_replay(std::vector<lobby> base) {
  for (auto& l : base) {
    item it;
    for (auto& s : l.sessions)
      it.members.add(std::move(s));
    l.sessions.clear();
    it.header = std::move(l);
    index_[it.header.id] = items_.size();
    items_.push_back(std::move(it));
  }
}

void lobby_replay::preparse(std::vector<const std::string*> payloads) {
  parsed_for_ = std::move(payloads);
  parsed_.assign(parsed_for_.size(), parsed{});
  next_parsed_ = 0;
  auto work = [this](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      auto& p = parsed_[i];
      p.ok = detail::read_lobby_record(*parsed_for_[i], p.doc, p.why);
    }
  };
  auto half = parsed_.size() / 2;
  if (half < 1000) {
    work(0, parsed_.size());
    return;
  }
  std::thread other{work, half, parsed_.size()};
  work(0, half);
  other.join();
}

bool lobby_replay::apply(const std::string& payload, std::string& why) {
  try {
    if (next_parsed_ < parsed_for_.size()
        && parsed_for_[next_parsed_] == &payload) {
      auto& p = parsed_[next_parsed_++];
      if (!p.ok) {
        why = p.why;
        return false;
      }
      return apply_doc(p.doc, why);
    }
    if (json_depth(payload) > max_json_depth) {
      why = "record nested too deep";
      return false;
    }
    detail::lobby_record_doc r;
    if (!detail::read_lobby_record(payload, r, why))
      return false;
    return apply_doc(r, why);
  } catch (const std::exception& e) {
    why = std::string{"cannot decode record: "} + e.what();
    return false;
  }
}

bool lobby_replay::apply_doc(detail::lobby_record_doc& r, std::string& why) {
  {
    if (r.op.empty()) {
      why = "record has no \"op\"";
      return false;
    }
    if (r.op == "lobby") {
      if (!r.has_lobby || r.header.id.empty() || r.header.name.empty()) {
        why = "lobby record without a lobby id or name";
        return false;
      }
      auto l = std::move(r.header);
      l.sessions.clear();
      if (auto k = index_.find(l.id); k != index_.end()) {
        items_[k->second].header = std::move(l);
      } else {
        index_[l.id] = items_.size();
        item it;
        it.header = std::move(l);
        items_.push_back(std::move(it));
      }
      return true;
    }
    if (r.op != "join" && r.op != "leave") {
      why = "unknown op \"" + r.op + "\"";
      return false;
    }
    auto k = index_.find(r.lobby_id);
    if (k == index_.end()) {
      why = r.op + " record for an unknown lobby";
      return false;
    }
    auto& it = items_[k->second];
    if (r.op == "leave") {
      it.members.erase(r.session_id);
      return true;
    }
    if (!r.has_session || r.member.session_id.empty()) {
      why = "join record without a session id";
      return false;
    }
    it.members.put(std::move(r.member));
    return true;
  }
}

std::vector<lobby> lobby_replay::result() {
  std::vector<lobby> out;
  out.reserve(items_.size());
  for (auto& it : items_) {
    auto l = std::move(it.header);
    l.sessions = it.members.take();
    out.push_back(std::move(l));
  }
  items_.clear();
  index_.clear();
  return out;
}

} // namespace vb
