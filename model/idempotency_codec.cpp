#include "model/idempotency_codec.hpp"

#include <cmath>
#include <exception>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "model/json.hpp"
#include "model/record_codec.hpp"
#include "model/validate.hpp"

namespace vb {

using nlohmann::json;

namespace {

/// Parses a JSON object, the depth checked first.
bool parse_object(const std::string& text, json& j, const char* what,
                  std::string& why) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    why = std::string{"empty "} + what;
    return false;
  }
  if (json_depth(text) > max_json_depth) {
    why = std::string{what} + " nested deeper than "
          + std::to_string(max_json_depth) + " levels";
    return false;
  }
  j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    why = std::string{what} + " is not valid JSON";
    return false;
  }
  if (!j.is_object()) {
    why = std::string{what} + " is " + j.type_name() + ", not an object";
    return false;
  }
  return true;
}

/// A string field; false (and `why`) when present with another type.
bool string_field(const json& j, const char* key, std::string& out,
                  std::string& why) {
  auto i = j.find(key);
  if (i == j.end() || i->is_null()) {
    out.clear();
    return true;
  }
  if (!i->is_string()) {
    why = std::string{"\""} + key + "\" is not a string";
    return false;
  }
  out = i->get<std::string>();
  return true;
}

/// One entry of a snapshot or a put record.
bool read_entry(const json& j, idempotency_entry& e, std::string& why) {
  if (!j.is_object()) {
    why = "an entry is not an object";
    return false;
  }
  idempotency_entry r;
  if (!string_field(j, "key", r.key, why)
      || !string_field(j, "fingerprint", r.fingerprint, why)
      || !string_field(j, "lobby_id", r.lobby_id, why))
    return false;
  if (r.key.empty()) {
    why = "an entry without a key";
    return false;
  }
  auto t = j.find("expires_at");
  if (t == j.end() || !t->is_number() || !std::isfinite(t->get<double>())) {
    why = "entry " + r.key + ": no numeric \"expires_at\"";
    return false;
  }
  r.expires_at = t->get<double>();
  auto s = j.find("session");
  if (s == j.end() || !s->is_object()) {
    why = "entry " + r.key + ": no \"session\" object";
    return false;
  }
  try {
    r.answer = s->get<session>();
  } catch (const json::exception& ex) {
    why = "entry " + r.key + ": session: " + error_message(ex);
    return false;
  }
  if (r.answer.session_id.empty()) {
    why = "entry " + r.key + ": session without a session_id";
    return false;
  }
  e = std::move(r);
  return true;
}

} // namespace

std::string join_fingerprint(std::string_view bot_name, const join_request& j) {
  // A JSON array: unambiguous whatever the fields hold.
  return compact_json(json::array(
    {std::string{bot_name}, j.lobby_id, j.nick, j.provider_id}));
}

std::string idempotency_entry_json(const idempotency_entry& e) {
  return compact_json(json{{"key", e.key},
                           {"fingerprint", e.fingerprint},
                           {"lobby_id", e.lobby_id},
                           {"expires_at", e.expires_at},
                           {"session", e.answer}});
}

std::string idempotency_put_record(const std::string& entry_json) {
  return op_record("put", {{"entry", entry_json}});
}

std::string idempotency_del_record(const std::string& key) {
  return compact_json(json{{"op", "del"}, {"key", key}});
}

std::string
encode_idempotency_fragments(const std::vector<const std::string*>& entries,
                             uint64_t journal_seq) {
  size_t size = 96;
  for (auto* e : entries)
    size += e->size() + 1;
  std::string out;
  out.reserve(size);
  out += R"({"format":)";
  out += compact_json(json(idempotency_format));
  out += ',';
  if (journal_seq != 0) {
    out += R"("journal_seq":)";
    out += std::to_string(journal_seq);
    out += ',';
  }
  out += R"("keys":[)";
  bool first = true;
  for (auto* e : entries) {
    if (!first)
      out += ',';
    first = false;
    out += *e;
  }
  out += R"(],"version":1})";
  return out;
}

std::string encode_idempotency(const std::vector<idempotency_entry>& es,
                               uint64_t journal_seq) {
  std::vector<std::string> rendered;
  rendered.reserve(es.size());
  for (auto& e : es)
    rendered.push_back(idempotency_entry_json(e));
  std::vector<const std::string*> parts;
  parts.reserve(rendered.size());
  for (auto& r : rendered)
    parts.push_back(&r);
  return encode_idempotency_fragments(parts, journal_seq);
}

bool decode_idempotency(const std::string& text,
                        std::vector<idempotency_entry>& out, std::string& why,
                        uint64_t* journal_seq) {
  try {
    json j;
    if (!parse_object(text, j, "snapshot", why))
      return false;
    auto f = j.find("format");
    if (f == j.end() || !f->is_string() || *f != idempotency_format) {
      why = std::string{"format is not \""} + idempotency_format + "\"";
      return false;
    }
    auto v = j.find("version");
    if (v == j.end() || !v->is_number_integer() || *v != 1) {
      why = "unsupported or missing \"version\" (this server reads version 1)";
      return false;
    }
    uint64_t seq = 0;
    if (auto s = j.find("journal_seq"); s != j.end()) {
      if (!s->is_number_unsigned()) {
        why = "\"journal_seq\" is not an unsigned integer";
        return false;
      }
      seq = s->get<uint64_t>();
    }
    auto keys = j.find("keys");
    if (keys == j.end() || !keys->is_array()) {
      why = "no \"keys\" array";
      return false;
    }
    std::vector<idempotency_entry> result;
    result.reserve(keys->size());
    std::unordered_set<std::string> seen;
    for (auto& k : *keys) {
      idempotency_entry e;
      if (!read_entry(k, e, why))
        return false;
      if (!seen.insert(e.key).second) {
        why = "duplicate key " + e.key;
        return false;
      }
      result.push_back(std::move(e));
    }
    out = std::move(result);
    if (journal_seq)
      *journal_seq = seq;
    return true;
  } catch (const std::exception& e) {
    why = "cannot decode: " + error_message(e);
    return false;
  }
}

// -- replay ---------------------------------------------------------------------

template <>
bool idempotency_replay::apply(const std::string& payload, std::string& why) {
  try {
    json j;
    if (!parse_object(payload, j, "record", why))
      return false;
    auto op = j.find("op");
    if (op == j.end() || !op->is_string()) {
      why = "record has no \"op\"";
      return false;
    }
    if (*op == "put") {
      auto i = j.find("entry");
      if (i == j.end()) {
        why = "put record without an entry";
        return false;
      }
      idempotency_entry e;
      if (!read_entry(*i, e, why))
        return false;
      items_.put(std::move(e));
      return true;
    }
    if (*op == "del") {
      std::string key;
      if (!string_field(j, "key", key, why))
        return false;
      items_.erase(key);
      return true;
    }
    why = "unknown op " + op->dump();
    return false;
  } catch (const std::exception& e) {
    why = std::string{"cannot decode record: "} + error_message(e);
    return false;
  }
}

} // namespace vb
