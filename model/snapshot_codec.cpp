#include "model/snapshot_codec.hpp"

#include <cmath>
#include <exception>
#include <string_view>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "model/json.hpp"
#include "model/lobby_sax.hpp"
#include "model/record_codec.hpp"
#include "model/validate.hpp"

namespace vb {

using nlohmann::json;

namespace {

// -- parsing -------------------------------------------------------------------

/// A SAX handler that builds nothing and keeps the first parse error.
struct parse_error_sax : nlohmann::json_sax<json> {
  std::string message;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& e) override {
    message = error_message(e);
    return false;
  }
};

/// nlohmann's description of why `text` does not parse (line, column, what).
std::string parse_error_message(const std::string& text) {
  parse_error_sax sax;
  json::sax_parse(text, &sax, json::input_format_t::json, true);
  return sax.message.empty() ? "not JSON" : sax.message;
}

/// What every snapshot's text is checked for before it is parsed.
bool check_text(const std::string& text, std::string& why) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    why = "empty file";
    return false;
  }
  if (json_depth(text) > max_json_depth) {
    why = "JSON nested deeper than " + std::to_string(max_json_depth)
          + " levels";
    return false;
  }
  return true;
}

/// Parses a snapshot into a JSON object, the depth checked first.
bool parse_snapshot(const std::string& text, json& j, std::string& why) {
  if (!check_text(text, why))
    return false;
  j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    why = "malformed JSON (" + parse_error_message(text) + ")";
    return false;
  }
  if (!j.is_object()) {
    why = std::string{"top level is "} + j.type_name() + ", not an object";
    return false;
  }
  return true;
}

/// True when `j` declares a format of ours ("format" is a string); a legacy
/// Python file has only objects as values.
bool has_format(const json& j) {
  auto f = j.find("format");
  return f != j.end() && f->is_string();
}

/// Checks {"format": expected, "version": 1} as read: `format` is nullptr
/// when there is no string "format", `version` when no integer "version".
bool check_header(const std::string* format, const char* expected,
                  const json* version, std::string& why) {
  if (format == nullptr) {
    why = std::string{"no \"format\" field (expected \""} + expected + "\")";
    return false;
  }
  if (*format != expected) {
    why = "format is \"" + *format + "\", expected \"" + expected + "\"";
    return false;
  }
  if (version == nullptr) {
    why = "no integer \"version\" field";
    return false;
  }
  if (*version != snapshot_version) {
    why = "unsupported version " + version->dump()
          + " (this server reads version " + std::to_string(snapshot_version)
          + ")";
    return false;
  }
  return true;
}

bool check_header(const json& j, const char* expected, std::string& why) {
  auto v = j.find("version");
  return check_header(
    has_format(j) ? &j.find("format")->get_ref<const std::string&>() : nullptr,
    expected, v != j.end() && v->is_number_integer() ? &*v : nullptr, why);
}

/// The array `key` of a snapshot object.
const json* list_field(const json& j, const char* key, std::string& why) {
  auto i = j.find(key);
  if (i == j.end() || !i->is_array()) {
    why = std::string{"no \""} + key + "\" array";
    return nullptr;
  }
  return &*i;
}

/// Converts one entry, turning a type error into a reason naming `where`.
template <class T>
bool convert(const json& j, const std::string& where, T& out,
             std::string& why) {
  try {
    out = j.get<T>();
    return true;
  } catch (const json::exception& e) {
    why = where + ": " + error_message(e);
    return false;
  }
}

/// How an entry of one kind (a provider, a lobby) names its id and its
/// items in the reasons.
struct entry_words {
  const char* id;       // "provider_id"
  const char* items;    // "bots"
  const char* item_key; // "name"
};

/// Checks one entry: an id and a name, a key on each of its items, and an
/// id no earlier entry had (`ids`).
template <class Item>
bool check_entry(const entry_words& words, const std::string& where,
                 const std::string& id, const std::string& name,
                 const std::vector<Item>& items, std::string Item::*item_key,
                 std::unordered_set<std::string>& ids, std::string& why) {
  if (id.empty()) {
    why = where + ": no " + words.id;
    return false;
  }
  if (name.empty()) {
    why = where + ": no name";
    return false;
  }
  for (std::size_t i = 0; i < items.size(); ++i) {
    if ((items[i].*item_key).empty()) {
      why = where + ": " + words.items + "[" + std::to_string(i) + "] has no "
            + words.item_key;
      return false;
    }
  }
  if (!ids.insert(id).second) {
    why = where + ": duplicate " + words.id + " \"" + id + "\"";
    return false;
  }
  return true;
}

// -- providers -----------------------------------------------------------------

bool check_provider(const provider& p, const std::string& where,
                    std::unordered_set<std::string>& ids, std::string& why) {
  return check_entry({"provider_id", "bots", "name"}, where, p.provider_id,
                     p.name, p.bots, &bot_info::name, ids, why);
}

bool decode_our_providers(const json& j, std::vector<provider>& out,
                          std::string& why) {
  if (!check_header(j, providers_format, why))
    return false;
  auto list = list_field(j, "providers", why);
  if (list == nullptr)
    return false;
  std::unordered_set<std::string> ids;
  for (std::size_t i = 0; i < list->size(); ++i) {
    auto where = "providers[" + std::to_string(i) + "]";
    provider p;
    if (!convert((*list)[i], where, p, why)
        || !check_provider(p, where, ids, why))
      return false;
    out.push_back(std::move(p));
  }
  return true;
}

/// The Python server's file: {provider_id: {provider_id, base_url, ...}}.
bool decode_legacy_providers(const json& j, std::vector<provider>& out,
                             std::string& why) {
  std::unordered_set<std::string> ids;
  for (const auto& [key, value] : j.items()) {
    auto where = "provider \"" + key + "\"";
    provider p;
    if (!convert(value, where, p, why))
      return false;
    p.provider_id = key;
    p.via = transport::http;
    if (!check_provider(p, where, ids, why))
      return false;
    out.push_back(std::move(p));
  }
  return true;
}

// -- lobbies ---------------------------------------------------------------------

bool check_lobby(const lobby& l, const std::string& where,
                 std::unordered_set<std::string>& ids, std::string& why) {
  return check_entry({"id", "sessions", "session_id"}, where, l.id, l.name,
                     l.sessions, &session::session_id, ids, why);
}

/// Runs a decoder without letting anything escape; `out` changes only on
/// success.
template <class T, class Decode>
bool guarded(const std::string& text, std::vector<T>& out, std::string& why,
             Decode decode) {
  try {
    json j;
    if (!parse_snapshot(text, j, why))
      return false;
    std::vector<T> result;
    if (!decode(j, result))
      return false;
    out = std::move(result);
    return true;
  } catch (const std::exception& e) {
    why = "cannot decode: " + error_message(e);
    return false;
  }
}

} // namespace

namespace {

/// `{"format":"<format>",["journal_seq":<seq>,]"<list>":[`: a snapshot
/// written from fragments up to its list, keys in nlohmann's order.
std::string snapshot_head(const char* format, uint64_t journal_seq,
                          const char* list) {
  std::string out = R"({"format":)" + compact_json(json(format)) + ",";
  if (journal_seq != 0)
    out += R"("journal_seq":)" + std::to_string(journal_seq) + ",";
  return out + '"' + list + "\":[";
}

/// What follows the list of snapshot_head.
std::string snapshot_tail() {
  return R"(],"version":)" + std::to_string(snapshot_version) + "}";
}

/// The "journal_seq" of a snapshot object, 0 when absent.
bool read_seq(const json& j, uint64_t* out, std::string& why) {
  if (out == nullptr)
    return true;
  *out = 0;
  auto i = j.find("journal_seq");
  if (i == j.end())
    return true;
  if (!i->is_number_unsigned()) {
    why = "\"journal_seq\" is not an unsigned integer";
    return false;
  }
  *out = i->get<uint64_t>();
  return true;
}

} // namespace

std::string encode_providers(const std::vector<provider>& ps) {
  auto list = json::array();
  for (auto& p : ps)
    list.push_back(snapshot_json(p));
  return compact_json(json{{"format", providers_format},
                           {"version", snapshot_version},
                           {"providers", std::move(list)}});
}

bool decode_providers(const std::string& text, std::vector<provider>& out,
                      std::string& why, uint64_t* journal_seq) {
  uint64_t seq = 0;
  auto ok = guarded(text, out, why, [&](const json& j, std::vector<provider>& r) {
    if (!has_format(j))
      return decode_legacy_providers(j, r, why);
    return read_seq(j, &seq, why) && decode_our_providers(j, r, why);
  });
  if (ok && journal_seq)
    *journal_seq = seq;
  return ok;
}

std::string encode_lobbies(const std::vector<lobby>& ls) {
  return compact_json(json{{"format", lobbies_format},
                           {"version", snapshot_version},
                           {"lobbies", ls}});
}

namespace {

// A hand-written writer for the items snapshots and journals hold by the
// hundred thousand (a start-up renders every member once): the same text as
// nlohmann's dump of the same value (keys sorted, numbers by its to_chars),
// without building a JSON value first.

void put_string(std::string& out, const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      // Escapes and invalid UTF-8: nlohmann's rules.
      out += compact_json(json(s));
      return;
    }
  out += '"';
  out += s;
  out += '"';
}

void put_number(std::string& out, double x) {
  if (!std::isfinite(x)) {
    out += "null";
    return;
  }
  char buf[64];
  auto end = nlohmann::detail::to_chars(buf, buf + sizeof(buf), x);
  out.append(buf, end);
}

void put_key(std::string& out, const char* key, bool first = false) {
  if (!first)
    out += ',';
  out += '"';
  out += key;
  out += "\":";
}

void put_bool(std::string& out, bool x) {
  out += x ? "true" : "false";
}

/// A time or interval whose 0 means "none": null then, as model/json.cpp
/// writes it.
void put_positive_or_null(std::string& out, double x) {
  if (x > 0)
    put_number(out, x);
  else
    out += "null";
}

} // namespace

std::string provider_json(const provider& p) {
  std::string out;
  out.reserve(384 + p.bots.size() * 64);
  out += '{';
  put_key(out, "base_url", true);
  put_string(out, p.base_url);
  put_key(out, "bots");
  out += '[';
  for (size_t i = 0; i < p.bots.size(); ++i) {
    if (i > 0)
      out += ',';
    out += '{';
    put_key(out, "description", true);
    put_string(out, p.bots[i].description);
    put_key(out, "name");
    put_string(out, p.bots[i].name);
    out += '}';
  }
  out += ']';
  put_key(out, "description");
  put_string(out, p.description);
  put_key(out, "drain_by_operator");
  put_bool(out, p.drain_by_operator);
  put_key(out, "drain_deadline");
  put_positive_or_null(out, p.drain_deadline);
  put_key(out, "heartbeat_interval");
  put_positive_or_null(out, p.heartbeat_interval);
  put_key(out, "instance_id");
  if (p.instance_id.empty())
    out += "null";
  else
    put_string(out, p.instance_id);
  put_key(out, "last_seen");
  put_number(out, p.last_seen);
  put_key(out, "name");
  put_string(out, p.name);
  put_key(out, "provider_id");
  put_string(out, p.provider_id);
  put_key(out, "registered_at");
  put_number(out, p.registered_at);
  put_key(out, "status");
  put_string(out, to_string(p.status));
  put_key(out, "transport");
  put_string(out, to_string(p.via));
  out += '}';
  return out;
}


std::string
encode_provider_fragments(const std::vector<const std::string*>& ps,
                          uint64_t journal_seq) {
  // {"format":...,"providers":[...],"version":1}, as encode_providers
  // writes it (nlohmann orders the keys).
  size_t size = 96;
  for (auto p : ps)
    size += p->size() + 1;
  std::string out;
  out.reserve(size);
  out += snapshot_head(providers_format, journal_seq, "providers");
  bool first = true;
  for (auto p : ps) {
    if (!first)
      out += ',';
    first = false;
    out += *p;
  }
  out += snapshot_tail();
  return out;
}

std::string session_json(const session& s) {
  std::string out;
  out.reserve(128 + s.session_id.size() + s.nick.size() + s.bot_name.size()
              + s.provider_id.size() + s.run_id.size());
  out += '{';
  put_key(out, "bot_name", true);
  put_string(out, s.bot_name);
  put_key(out, "is_bot");
  put_bool(out, s.is_bot);
  put_key(out, "joined_at");
  put_number(out, s.joined_at);
  put_key(out, "moved_at");
  put_positive_or_null(out, s.moved_at);
  put_key(out, "nick");
  put_string(out, s.nick);
  put_key(out, "orphaned");
  put_bool(out, s.orphaned);
  put_key(out, "provider_id");
  put_string(out, s.provider_id);
  put_key(out, "run_id");
  put_string(out, s.run_id);
  put_key(out, "session_id");
  put_string(out, s.session_id);
  if (!s.token_hash.empty()) {
    put_key(out, "token_hash");
    put_string(out, s.token_hash);
  }
  if (s.voice) {
    put_key(out, "voice");
    put_bool(out, true);
  }
  out += '}';
  return out;
}

std::string encode_lobby_fragments(const std::vector<lobby_fragments>& ls) {
  // The same text as encode_lobbies (headers with their member count, keys
  // in the order nlohmann writes them), assembled by encode_lobby_parts.
  std::vector<std::string> headers;
  headers.reserve(ls.size());
  std::vector<lobby_parts> parts;
  parts.reserve(ls.size());
  for (auto& l : ls) {
    auto head = lobby_summary(*l.header);
    head["members"] = l.sessions.size();
    headers.push_back(compact_json(head));
  }
  for (size_t i = 0; i < ls.size(); ++i)
    parts.push_back(lobby_parts{&headers[i], ls[i].sessions});
  return encode_lobby_parts(parts, 0);
}

std::string encode_lobby_parts(const std::vector<lobby_parts>& ls,
                               uint64_t journal_seq) {
  size_t size = 96;
  for (auto& l : ls) {
    size += l.header->size() + 32;
    for (auto s : l.sessions)
      size += s->size() + 1;
  }
  std::string out;
  out.reserve(size);
  out += snapshot_head(lobbies_format, journal_seq, "lobbies");
  bool first_lobby = true;
  for (auto& l : ls) {
    if (!first_lobby)
      out += ',';
    first_lobby = false;
    out.append(*l.header, 0, l.header->size() - 1); // without its brace
    out += R"(,"sessions":[)";
    bool first = true;
    for (auto s : l.sessions) {
      if (!first)
        out += ',';
      first = false;
      out += *s;
    }
    out += "]}";
  }
  out += snapshot_tail();
  return out;
}

bool decode_lobbies(const std::string& text, std::vector<lobby>& out,
                    std::string& why, uint64_t* journal_seq) {
  // Read with SAX into the structs: a snapshot of a hundred thousand
  // members never becomes a JSON value.
  try {
    detail::lobbies_doc doc;
    if (!check_text(text, why) || !detail::read_lobbies_doc(text, doc, why))
      return false;
    json version = doc.version;
    if (!check_header(doc.has_format ? &doc.format : nullptr, lobbies_format,
                      doc.has_version ? &version : nullptr, why))
      return false;
    if (!doc.has_lobbies) {
      why = "no \"lobbies\" array";
      return false;
    }
    std::unordered_set<std::string> ids;
    for (std::size_t i = 0; i < doc.lobbies.size(); ++i)
      if (!check_lobby(doc.lobbies[i], "lobbies[" + std::to_string(i) + "]",
                       ids, why))
        return false;
    out = std::move(doc.lobbies);
    if (journal_seq)
      *journal_seq = doc.journal_seq;
    return true;
  } catch (const std::exception& e) {
    why = "cannot decode: " + error_message(e);
    return false;
  }
}

} // namespace vb
