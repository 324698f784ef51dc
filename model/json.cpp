#include "model/json.hpp"

#include <string>
#include <string_view>
#include <type_traits>

namespace vb {

using nlohmann::json;

namespace {

/// A JSON type a field must have: its test, and its words in the error.
struct json_type {
  bool (json::*is)() const;
  const char* words;
};

constexpr json_type a_string{&json::is_string, "a string"};
constexpr json_type an_array{&json::is_array, "an array"};

/// The JSON type of a field of each C++ type that `read` reads.
template <class T>
constexpr json_type type_of{};
template <class T>
constexpr bool type_of_known =
  std::is_same<T, std::string>::value || std::is_same<T, double>::value
  || std::is_same<T, int64_t>::value || std::is_same<T, uint64_t>::value
  || std::is_same<T, bool>::value;
template <>
constexpr json_type type_of<std::string> = a_string;
template <>
constexpr json_type type_of<double>{&json::is_number, "a number"};
template <>
constexpr json_type type_of<int64_t>{&json::is_number_integer, "an integer"};
template <>
constexpr json_type type_of<uint64_t>{&json::is_number_unsigned,
                                      "a non-negative integer"};
template <>
constexpr json_type type_of<bool>{&json::is_boolean, "a boolean"};

/// The member `key` of `j`, or nullptr when it is missing or null; one of
/// another JSON type than `type` throws a type error naming the field.
const json* present(const json& j, const char* key, const json_type& type) {
  auto i = j.find(key);
  if (i == j.end() || i->is_null())
    return nullptr;
  if (!((*i).*type.is)())
    throw json::type_error::create(302,
                                   std::string{"field '"} + key + "' must be "
                                     + type.words + ", not " + i->type_name(),
                                   nullptr);
  return &*i;
}

void require_object(const json& j, const char* what) {
  if (!j.is_object())
    throw json::type_error::create(302,
                                   std::string{what} + " must be an object, not "
                                     + j.type_name(),
                                   nullptr);
}

template <class T>
void read(const json& j, const char* key, T& out) {
  // Not `type_of<T>.is != nullptr`: UBSan's build does not take a member
  // pointer comparison as a constant.
  static_assert(type_of_known<T>,
                "a field type read() knows");
  if (auto v = present(j, key, type_of<T>))
    v->get_to(out);
}

template <class Enum>
void read_enum(const json& j, const char* key, Enum& out) {
  auto v = present(j, key, a_string);
  if (v != nullptr && !from_string(v->get_ref<const std::string&>(), out))
    throw json::type_error::create(302,
                                   std::string{"field '"} + key
                                     + "' has an unknown value \""
                                     + v->get_ref<const std::string&>() + "\"",
                                   nullptr);
}

template <class T>
void read_list(const json& j, const char* key, std::vector<T>& out) {
  if (auto v = present(j, key, an_array)) {
    out.clear();
    out.reserve(v->size());
    for (std::size_t i = 0; i < v->size(); ++i) {
      try {
        out.push_back((*v)[i].template get<T>());
      } catch (const json::type_error& e) {
        throw json::type_error::create(302,
                                       std::string{key} + "["
                                         + std::to_string(i)
                                         + "]: " + error_message(e),
                                       nullptr);
      }
    }
  }
}

/// Reads one field by its C++ type: an enum by name, a list item by item.
template <class T>
void read_field(const json& j, const char* key, T& out) {
  if constexpr (std::is_enum<T>::value)
    read_enum(j, key, out);
  else
    read(j, key, out);
}

template <class T>
void read_field(const json& j, const char* key, std::vector<T>& out) {
  read_list(j, key, out);
}

/// Reads each ("key", field) pair in turn.
void read_pairs(const json&) {}

template <class Field, class... Rest>
void read_pairs(const json& j, const char* key, Field& field, Rest&... rest) {
  read_field(j, key, field);
  read_pairs(j, rest...);
}

/// `x` from the JSON object `j` (`what` names it in the error when it is
/// none): a default value, then the ("key", field) pairs of `fields` read.
template <class T, class... Fields>
void read_object(const json& j, const char* what, T& x, Fields&... fields) {
  require_object(j, what);
  x = T{};
  read_pairs(j, fields...);
}

} // namespace

std::string error_message(const std::exception& e) {
  std::string_view what = e.what();
  if (what.rfind("[json.exception.", 0) == 0) {
    auto end = what.find("] ");
    if (end != std::string_view::npos)
      what.remove_prefix(end + 2);
  }
  return std::string{what};
}

void to_json(json& j, const bot_info& x) {
  j = json{{"name", x.name}, {"description", x.description}};
}

void from_json(const json& j, bot_info& x) {
  read_object(j, "a bot", x, "name", x.name, "description", x.description);
}

namespace {

// The fleet fields' "not announced" values are null in JSON, not the
// sentinels the structs use (SPEC §7: heartbeat_interval is null when none
// was announced).

json text_or_null(const std::string& s) {
  return s.empty() ? json(nullptr) : json(s);
}

json positive_or_null(double x) {
  return x > 0 ? json(x) : json(nullptr);
}

json announced_or_null(double x) {
  return x >= 0 ? json(x) : json(nullptr);
}

json announced_or_null(int64_t x) {
  return x >= 0 ? json(x) : json(nullptr);
}

} // namespace

void to_json(json& j, const provider& x) {
  j = json{{"provider_id", x.provider_id},
           {"name", x.name},
           {"base_url", x.base_url},
           {"description", x.description},
           {"transport", to_string(x.via)},
           {"bots", x.bots},
           {"registered_at", x.registered_at},
           {"last_seen", x.last_seen},
           {"status", to_string(x.status)},
           {"instance_id", text_or_null(x.instance_id)},
           {"heartbeat_interval", positive_or_null(x.heartbeat_interval)},
           {"load", announced_or_null(x.load)},
           {"capacity", announced_or_null(x.capacity)},
           {"active_runs", x.active_runs},
           {"lease_expires_at", x.lease_expires_at}};
}

json snapshot_json(const provider& x) {
  json j = x;
  // Volatile: announced again by the next heartbeat, counted again from the
  // lobbies, computed again from last_seen.
  for (auto key : {"load", "capacity", "active_runs", "lease_expires_at"})
    j.erase(key);
  j["drain_deadline"] = positive_or_null(x.drain_deadline);
  j["drain_by_operator"] = x.drain_by_operator;
  return j;
}

void from_json(const json& j, provider& x) {
  read_object(j, "a provider", x, "provider_id", x.provider_id, "name", x.name,
              "base_url", x.base_url, "description", x.description,
              "transport", x.via, "bots", x.bots, "registered_at",
              x.registered_at, "last_seen", x.last_seen, "status", x.status,
              "instance_id", x.instance_id, "heartbeat_interval",
              x.heartbeat_interval, "load", x.load, "capacity", x.capacity,
              "active_runs", x.active_runs, "lease_expires_at",
              x.lease_expires_at, "drain_deadline", x.drain_deadline,
              "drain_by_operator", x.drain_by_operator);
}

void to_json(json& j, const session& x) {
  j = json{{"session_id", x.session_id}, {"nick", x.nick},
           {"is_bot", x.is_bot},         {"bot_name", x.bot_name},
           {"provider_id", x.provider_id}, {"run_id", x.run_id},
           {"joined_at", x.joined_at},   {"orphaned", x.orphaned},
           {"moved_at", positive_or_null(x.moved_at)}};
}

void to_json(json& j, const voice_peer& x) {
  j = json{{"session_id", x.session_id},
           {"nick", x.nick},
           {"is_bot", x.is_bot},
           {"bot_name", x.bot_name}};
}

void from_json(const json& j, session& x) {
  read_object(j, "a session", x, "session_id", x.session_id, "nick", x.nick,
              "is_bot", x.is_bot, "bot_name", x.bot_name, "provider_id",
              x.provider_id, "run_id", x.run_id, "joined_at", x.joined_at,
              "orphaned", x.orphaned, "moved_at", x.moved_at);
}

json lobby_summary(const lobby& x) {
  return json{{"id", x.id},
              {"name", x.name},
              {"private", x.is_private},
              {"created_at", x.created_at},
              {"members", x.sessions.size()}};
}

void to_json(json& j, const lobby& x) {
  j = lobby_summary(x);
  j["sessions"] = x.sessions;
}

void from_json(const json& j, lobby& x) {
  read_object(j, "a lobby", x, "id", x.id, "name", x.name, "private",
              x.is_private, "created_at", x.created_at, "sessions",
              x.sessions);
}

} // namespace vb
