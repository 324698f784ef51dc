#include "model/validate.hpp"

#include "model/url.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <unordered_map>
#include <utility>

namespace vb {

using nlohmann::json;

// -- rendering -----------------------------------------------------------------

namespace {

/// Compact dump that never throws: invalid UTF-8 becomes U+FFFD. Keys keep
/// FastAPI's order (detail before code; loc, msg, type, ctx) for readers.
std::string dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

} // namespace

std::string render(const request_error& e) {
  if (e.status != 422)
    return error_body(e.detail, e.code);
  auto detail = nlohmann::ordered_json::array();
  for (const auto& f : e.errors) {
    nlohmann::ordered_json item{{"loc", f.loc}, {"msg", f.msg}, {"type", f.type}};
    if (!f.ctx.is_null())
      item["ctx"] = f.ctx;
    detail.push_back(std::move(item));
  }
  return dump({{"detail", std::move(detail)},
               {"code", e.code.empty() ? "validation_error" : e.code}});
}

std::string error_body(std::string_view detail, std::string_view code) {
  return dump({{"detail", std::string{detail}}, {"code", std::string{code}}});
}

// -- text ------------------------------------------------------------------------

std::size_t json_depth(std::string_view text) {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > deepest)
          deepest = depth;
        break;
      case ']':
      case '}':
        if (depth > 0)
          --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

namespace {

/// Decodes the code point at s[i] of a valid UTF-8 string and advances i.
char32_t next_code_point(std::string_view s, std::size_t& i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  auto lead = byte(i);
  if (lead < 0x80) {
    ++i;
    return lead;
  }
  std::size_t extra = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : 1;
  char32_t cp = lead & (0x3F >> extra);
  for (std::size_t k = 1; k <= extra; ++k)
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  i += extra + 1;
  return cp;
}

bool is_control(char32_t cp) {
  return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F);
}

} // namespace

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto lead = static_cast<unsigned char>(s[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    std::size_t extra;
    unsigned char low = 0x80; // bounds of the second byte
    unsigned char high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      extra = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      extra = 2;
      if (lead == 0xE0)
        low = 0xA0; // overlong
      else if (lead == 0xED)
        high = 0x9F; // surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      extra = 3;
      if (lead == 0xF0)
        low = 0x90; // overlong
      else if (lead == 0xF4)
        high = 0x8F; // past U+10FFFF
    } else {
      return false;
    }
    if (s.size() - i <= extra)
      return false; // truncated sequence
    for (std::size_t k = 1; k <= extra; ++k) {
      auto b = static_cast<unsigned char>(s[i + k]);
      auto lo = k == 1 ? low : static_cast<unsigned char>(0x80);
      auto hi = k == 1 ? high : static_cast<unsigned char>(0xBF);
      if (b < lo || b > hi)
        return false;
    }
    i += extra + 1;
  }
  return true;
}

std::size_t utf8_length(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80)
      ++n;
  return n;
}

bool printable(std::string_view s, bool allow_newline_tab) {
  if (!valid_utf8(s))
    return false;
  for (std::size_t i = 0; i < s.size();) {
    auto cp = next_code_point(s, i);
    if (allow_newline_tab && (cp == '\n' || cp == '\t'))
      continue;
    if (is_control(cp))
      return false;
  }
  return true;
}

bool valid_bot_name(std::string_view s) {
  if (s.empty() || s.size() > max_name_length)
    return false;
  for (unsigned char c : s) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

// -- field errors (pydantic 1.10 messages) ---------------------------------------

namespace {

json at(json loc, json key) {
  loc.push_back(std::move(key));
  return loc;
}

field_error missing(const json& loc) {
  return {loc, "field required", "value_error.missing", nullptr};
}

field_error none_not_allowed(const json& loc) {
  return {loc, "none is not an allowed value", "type_error.none.not_allowed",
          nullptr};
}

field_error not_a_string(const json& loc) {
  return {loc, "str type expected", "type_error.str", nullptr};
}

field_error not_a_bool(const json& loc) {
  return {loc, "value could not be parsed to a boolean", "type_error.bool",
          nullptr};
}

field_error not_a_list(const json& loc) {
  return {loc, "value is not a valid list", "type_error.list", nullptr};
}

field_error not_a_dict(const json& loc) {
  return {loc, "value is not a valid dict", "type_error.dict", nullptr};
}

field_error too_short(const json& loc, std::size_t limit) {
  return {loc,
          "ensure this value has at least " + std::to_string(limit)
            + " characters",
          "value_error.any_str.min_length",
          json{{"limit_value", limit}}};
}

field_error too_long(const json& loc, std::size_t limit) {
  return {loc,
          "ensure this value has at most " + std::to_string(limit)
            + " characters",
          "value_error.any_str.max_length",
          json{{"limit_value", limit}}};
}

field_error too_many_items(const json& loc, std::size_t limit) {
  return {loc, "ensure this value has at most " + std::to_string(limit) + " items",
          "value_error.list.max_items", json{{"limit_value", limit}}};
}

field_error not_utf8(const json& loc) {
  return {loc, "string is not valid UTF-8", "value_error.str.utf8", nullptr};
}

field_error not_printable(const json& loc) {
  return {loc, "string contains control characters", "value_error.str.printable",
          nullptr};
}

field_error no_pattern_match(const json& loc) {
  auto pattern = std::string{bot_name_pattern};
  return {loc, "string does not match regex \"" + pattern + "\"",
          "value_error.str.regex", json{{"pattern", pattern}}};
}

field_error not_a_float(const json& loc) {
  return {loc, "value is not a valid float", "type_error.float", nullptr};
}

field_error not_an_integer(const json& loc) {
  return {loc, "value is not a valid integer", "type_error.integer", nullptr};
}

/// A bound as pydantic prints it: 3600 rather than 3600.0, 0.05 as 0.05.
json limit_value(double x) {
  if (std::floor(x) == x && std::fabs(x) < 9007199254740992.0) // 2^53
    return static_cast<int64_t>(x);
  return x;
}

/// "ensure this value is <relation> <limit>" (pydantic's
/// value_error.number.not_ge and its siblings).
field_error out_of_bounds(const json& loc, const char* relation,
                          const char* type, const json& limit) {
  return {loc,
          std::string{"ensure this value is "} + relation + " " + limit.dump(),
          type, json{{"limit_value", limit}}};
}

field_error not_ge(const json& loc, const json& limit) {
  return out_of_bounds(loc, "greater than or equal to",
                       "value_error.number.not_ge", limit);
}

field_error not_gt(const json& loc, const json& limit) {
  return out_of_bounds(loc, "greater than", "value_error.number.not_gt", limit);
}

field_error not_le(const json& loc, const json& limit) {
  return out_of_bounds(loc, "less than or equal to",
                       "value_error.number.not_le", limit);
}

field_error not_ascii(const json& loc) {
  return {loc, "string contains characters other than printable ASCII",
          "value_error.str.ascii", nullptr};
}

field_error duplicate_bot(const json& loc, const std::string& name) {
  return {loc, "duplicate bot name \"" + name + "\"", "value_error.duplicate",
          nullptr};
}

// -- URLs --------------------------------------------------------------------------

// The grammar is model/url.hpp's, the one the outbound client parses with;
// here only its errors become pydantic-shaped field errors.

field_error bad_url_format(const json& loc) {
  return {loc, "invalid URL format", "value_error.url", nullptr};
}

field_error bad_url_scheme(const json& loc) {
  return {loc, "invalid or missing URL scheme", "value_error.url.scheme",
          nullptr};
}

field_error url_scheme_not_permitted(const json& loc) {
  return {loc, "URL scheme not permitted", "value_error.url.scheme",
          json{{"allowed_schemes", json::array({"http", "https"})}}};
}

field_error url_user_info(const json& loc) {
  return {loc, "URL must not contain user info (user:password@)",
          "value_error.url.userinfo", nullptr};
}

field_error bad_url_host(const json& loc) {
  return {loc, "URL host invalid", "value_error.url.host", nullptr};
}

field_error bad_url_port(const json& loc) {
  return {loc, "URL port invalid, port cannot exceed 65535",
          "value_error.url.port", nullptr};
}

field_error url_query_or_fragment(const json& loc) {
  return {loc, "URL must not contain a query or fragment ('?', '#')",
          "value_error.url.query", nullptr};
}

/// A URL in model/url.hpp's grammar (the string is valid UTF-8 and not too
/// long).
std::optional<field_error> check_url_field(std::string_view s,
                                           const json& loc) {
  switch (vb::check_url(s)) {
    case url_error::none: return std::nullopt;
    case url_error::bad_format: return bad_url_format(loc);
    case url_error::bad_scheme: return bad_url_scheme(loc);
    case url_error::scheme_not_permitted: return url_scheme_not_permitted(loc);
    case url_error::user_info: return url_user_info(loc);
    case url_error::bad_host: return bad_url_host(loc);
    case url_error::bad_port: return bad_url_port(loc);
    case url_error::query_or_fragment: return url_query_or_fragment(loc);
  }
  return bad_url_format(loc);
}

// -- string rules ------------------------------------------------------------------

enum class charset {
  printable, // no control characters
  text,      // printable plus \n and \t
  bot_name,  // bot_name_pattern
  url,       // check_url_field (model/url.hpp)
};

struct string_rule {
  bool required;           // missing → "field required"
  bool empty_means_absent; // "" is "not given" (optional ids, base_url)
  std::size_t min_length;  // code points
  std::size_t max_length;  // code points
  charset chars;
};

//                                   required, "" absent, min, max, chars
constexpr string_rule name_rule{true, false, 1, max_name_length,
                                charset::printable};
constexpr string_rule bot_name_rule{true, false, 1, max_name_length,
                                    charset::bot_name};
constexpr string_rule optional_nick_rule{false, false, 0, max_name_length,
                                         charset::printable};
constexpr string_rule description_rule{false, false, 0, max_description_length,
                                       charset::text};
constexpr string_rule url_rule{false, true, 0, max_url_length, charset::url};
constexpr string_rule required_id_rule{true, false, 1, max_id_length,
                                       charset::printable};
constexpr string_rule optional_id_rule{false, true, 0, max_id_length,
                                       charset::printable};
constexpr string_rule chat_text_rule{true, false, 1, max_chat_length,
                                     charset::text};
// "" is "not given", like the optional ids: the struct cannot tell them apart.
constexpr string_rule instance_id_rule{false, true, 1, max_instance_id_length,
                                       charset::printable};

/// Checks the contents of a string against its rule, in pydantic's order:
/// encoding, length, then characters or pattern.
std::optional<field_error> check_text(std::string_view s, const json& loc,
                                      const string_rule& rule) {
  if (rule.empty_means_absent && s.empty())
    return std::nullopt;
  if (!valid_utf8(s))
    return not_utf8(loc);
  auto n = utf8_length(s);
  if (n < rule.min_length)
    return too_short(loc, rule.min_length);
  if (n > rule.max_length)
    return too_long(loc, rule.max_length);
  switch (rule.chars) {
    case charset::printable:
    case charset::text:
      if (!printable(s, rule.chars == charset::text))
        return not_printable(loc);
      break;
    case charset::bot_name:
      if (!valid_bot_name(s))
        return no_pattern_match(loc);
      break;
    case charset::url:
      return check_url_field(s, loc);
  }
  return std::nullopt;
}

// -- number rules ------------------------------------------------------------------

struct number_rule {
  double min;
  bool min_exclusive; // > min rather than >= min
  double max;         // inclusive
};

constexpr number_rule heartbeat_interval_rule{min_heartbeat_interval, false,
                                              max_heartbeat_interval};
constexpr number_rule load_rule{0, false, 1};
constexpr number_rule drain_timeout_rule{0, true, max_drain_timeout};

/// Checks a number against its bounds. The comparisons are negated so that
/// NaN (only possible from CAF) fails the lower bound instead of passing.
std::optional<field_error> check_number(double x, const json& loc,
                                        const number_rule& rule) {
  if (rule.min_exclusive ? !(x > rule.min) : !(x >= rule.min))
    return rule.min_exclusive ? not_gt(loc, limit_value(rule.min))
                              : not_ge(loc, limit_value(rule.min));
  if (!(x <= rule.max))
    return not_le(loc, limit_value(rule.max));
  return std::nullopt;
}

/// Records the error, if any; true when there was none.
bool record(std::optional<field_error> e, std::vector<field_error>& errors) {
  if (!e)
    return true;
  errors.push_back(std::move(*e));
  return false;
}

// -- JSON objects --------------------------------------------------------------------

/// The fields of one JSON object at `loc`, read into a value with their rules;
/// errors go to a shared list so that all of them are reported.
class object_fields {
public:
  object_fields(const json& obj, json loc, std::vector<field_error>& errors)
    : obj_(obj), loc_(std::move(loc)), errors_(errors) {
  }

  /// Reads a string field; false when it has an error.
  bool string(const char* key, const string_rule& rule, std::string& out) {
    auto loc = at(loc_, key);
    auto v = find(key);
    if (v == nullptr || v->is_null()) {
      if (!rule.required)
        return true;
      errors_.push_back(v == nullptr ? missing(loc) : none_not_allowed(loc));
      return false;
    }
    if (!v->is_string())
      return record(not_a_string(loc), errors_);
    const auto& s = v->get_ref<const std::string&>();
    if (!record(check_text(s, loc, rule), errors_))
      return false;
    out = s;
    return true;
  }

  /// Reads a required string field that must be `expected` (a message's
  /// "type"); pydantic's "unexpected value" otherwise.
  void constant(const char* key, const char* expected) {
    std::string value;
    if (!string(key, name_rule, value) || value == expected)
      return;
    errors_.push_back({at(loc_, key),
                       std::string{"unexpected value; permitted: '"} + expected
                         + "'",
                       "value_error.const",
                       json{{"given", value},
                            {"permitted", json::array({expected})}}});
  }

  /// Reads an optional boolean field (missing or null: `out` unchanged).
  void boolean(const char* key, bool& out) {
    auto v = find(key);
    if (v == nullptr || v->is_null())
      return;
    if (!v->is_boolean())
      errors_.push_back(not_a_bool(at(loc_, key)));
    else
      out = v->get<bool>();
  }

  /// Reads an optional number within its rule (missing or null: `out`
  /// unchanged).
  void number(const char* key, const number_rule& rule, double& out) {
    auto v = find(key);
    if (v == nullptr || v->is_null())
      return;
    auto loc = at(loc_, key);
    if (!v->is_number()) {
      errors_.push_back(not_a_float(loc));
      return;
    }
    auto x = v->get<double>();
    if (record(check_number(x, loc, rule), errors_))
      out = x;
  }

  /// Reads an optional integer >= 0 (missing or null: `out` unchanged). An
  /// integral float (2.0) is an integer; 2.5 is not.
  void count(const char* key, int64_t& out);

  /// Reads an optional list of bots; false when missing or null.
  bool bots(const char* key, std::vector<bot_info>& out);

  /// Reads an optional list of run ids, each a string or an object with a
  /// "run_id" (other keys ignored); false when missing or null.
  bool runs(const char* key, std::vector<std::string>& out);
  /// The list at `key` when it is one of at most `max` items; null when
  /// absent (`given` false) or refused (an error recorded). No item is
  /// looked at before its length is known: bounded work.
  const json* bounded_list(const char* key, std::size_t max, json& loc,
                           bool& given);

private:
  const json* find(const char* key) const {
    auto i = obj_.find(key);
    return i == obj_.end() ? nullptr : &*i;
  }

  const json& obj_;
  json loc_;
  std::vector<field_error>& errors_;
};

void object_fields::count(const char* key, int64_t& out) {
  auto v = find(key);
  if (v == nullptr || v->is_null())
    return;
  auto loc = at(loc_, key);
  constexpr auto most = std::numeric_limits<int64_t>::max();
  if (v->is_number_unsigned()) {
    auto u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(most))
      errors_.push_back(not_le(loc, most));
    else
      out = static_cast<int64_t>(u);
  } else if (v->is_number_integer()) { // negative: unsigned ones are above
    errors_.push_back(not_ge(loc, 0));
  } else if (v->is_number_float()) {
    auto d = v->get<double>();
    if (std::floor(d) != d)
      errors_.push_back(not_an_integer(loc));
    else if (d < 0)
      errors_.push_back(not_ge(loc, 0));
    else if (d >= 9223372036854775808.0) // 2^63: past int64_t
      errors_.push_back(not_le(loc, most));
    else
      out = static_cast<int64_t>(d);
  } else {
    errors_.push_back(not_an_integer(loc));
  }
}

/// Reports each bot whose name repeats an earlier one (names with their own
/// error are skipped: `name_ok` is false for them).
void check_duplicate_bots(const std::vector<bot_info>& bots,
                          const std::vector<bool>& name_ok, const json& loc,
                          std::vector<field_error>& errors) {
  std::unordered_map<std::string_view, std::size_t> first;
  for (std::size_t i = 0; i < bots.size(); ++i) {
    if (!name_ok[i])
      continue;
    if (!first.emplace(bots[i].name, i).second)
      errors.push_back(duplicate_bot(at(at(loc, i), "name"), bots[i].name));
  }
}

const json* object_fields::bounded_list(const char* key, std::size_t max,
                                       json& loc, bool& given) {
  auto v = find(key);
  given = v != nullptr && !v->is_null();
  if (!given)
    return nullptr;
  loc = at(loc_, key);
  if (!v->is_array()) {
    errors_.push_back(not_a_list(loc));
    return nullptr;
  }
  if (v->size() > max) {
    errors_.push_back(too_many_items(loc, max));
    return nullptr;
  }
  return v;
}

bool object_fields::bots(const char* key, std::vector<bot_info>& out) {
  json loc;
  bool given = false;
  auto v = bounded_list(key, max_bots, loc, given);
  if (v == nullptr)
    return given;
  std::vector<bool> name_ok(v->size(), false);
  out.assign(v->size(), bot_info{});
  for (std::size_t i = 0; i < v->size(); ++i) {
    const auto& item = (*v)[i];
    if (!item.is_object()) {
      errors_.push_back(not_a_dict(at(loc, i)));
      continue;
    }
    object_fields bot{item, at(loc, i), errors_};
    name_ok[i] = bot.string("name", bot_name_rule, out[i].name);
    bot.string("description", description_rule, out[i].description);
  }
  check_duplicate_bots(out, name_ok, loc, errors_);
  return true;
}

bool object_fields::runs(const char* key, std::vector<std::string>& out) {
  json loc;
  bool given = false;
  auto v = bounded_list(key, max_runs, loc, given);
  if (v == nullptr)
    return given;
  out.clear();
  out.reserve(v->size());
  for (std::size_t i = 0; i < v->size(); ++i) {
    const auto& item = (*v)[i];
    if (item.is_object()) {
      std::string id;
      object_fields run{item, at(loc, i), errors_};
      if (run.string("run_id", required_id_rule, id))
        out.push_back(std::move(id));
    } else if (item.is_string()) {
      const auto& id = item.get_ref<const std::string&>();
      if (record(check_text(id, at(loc, i), required_id_rule), errors_))
        out.push_back(id);
    } else {
      errors_.push_back(not_a_string(at(loc, i)));
    }
  }
  return true;
}

// -- structs that did not come from JSON (CAF) -----------------------------------------

/// The bots rules of object_fields::bots for a list already read.
void check_bots(const std::vector<bot_info>& bots, const json& loc,
                std::vector<field_error>& errors) {
  if (bots.size() > max_bots) {
    errors.push_back(too_many_items(loc, max_bots));
    return;
  }
  std::vector<bool> name_ok(bots.size(), false);
  for (std::size_t i = 0; i < bots.size(); ++i) {
    auto item = at(loc, i);
    name_ok[i] = record(check_text(bots[i].name, at(item, "name"),
                                   bot_name_rule),
                        errors);
    record(check_text(bots[i].description, at(item, "description"),
                      description_rule),
           errors);
  }
  check_duplicate_bots(bots, name_ok, loc, errors);
}

/// The rules of object_fields::runs for a list already read.
void check_runs(const std::vector<std::string>& runs, const json& loc,
                std::vector<field_error>& errors) {
  if (runs.size() > max_runs) {
    errors.push_back(too_many_items(loc, max_runs));
    return;
  }
  for (std::size_t i = 0; i < runs.size(); ++i)
    record(check_text(runs[i], at(loc, i), required_id_rule), errors);
}

// -- bodies --------------------------------------------------------------------------

request_error validation_error(std::vector<field_error> errors,
                               std::string code = "validation_error") {
  request_error e;
  e.status = 422;
  e.code = std::move(code);
  e.errors = std::move(errors);
  return e;
}

request_error malformed_json() {
  request_error e;
  e.status = 400;
  e.code = "malformed_json";
  e.detail = "Malformed JSON body";
  return e;
}

bool is_blank(std::string_view s) {
  return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

enum class empty_body { missing, empty_object };

/// Parses a request body into a JSON object, or says why it cannot. The
/// depth is checked before nlohmann sees the text.
std::optional<request_error> parse_object(std::string_view body,
                                          empty_body if_empty, json& out) {
  if (json_depth(body) > max_json_depth)
    return validation_error({{json::array({"body"}),
                              "JSON nested deeper than 64 levels",
                              "value_error.json_too_deep", nullptr}},
                            "json_too_deep");
  if (!is_blank(body))
    out = json::parse(body.data(), body.data() + body.size(), nullptr, false);
  else
    out = nullptr;
  if (out.is_discarded())
    return malformed_json();
  if (out.is_null()) {
    if (if_empty == empty_body::empty_object) {
      out = json::object();
      return std::nullopt;
    }
    return validation_error({missing(json::array({"body"}))});
  }
  if (!out.is_object())
    return validation_error({not_a_dict(json::array({"body"}))});
  return std::nullopt;
}

template <class T>
parse_result<T> failure(request_error e) {
  parse_result<T> r;
  r.error = std::move(e);
  return r;
}

template <class T>
parse_result<T> finish(T value, std::vector<field_error> errors) {
  if (!errors.empty())
    return failure<T>(validation_error(std::move(errors)));
  parse_result<T> r;
  r.value = std::move(value);
  return r;
}

/// Parses `body` as an object and reads it with `read(fields, value)`.
template <class T, class Read>
parse_result<T> parse_body(std::string_view body, empty_body if_empty,
                           Read read) {
  try {
    json j;
    if (auto e = parse_object(body, if_empty, j))
      return failure<T>(std::move(*e));
    std::vector<field_error> errors;
    object_fields fields{j, json::array({"body"}), errors};
    T value;
    read(fields, value);
    return finish(std::move(value), std::move(errors));
  } catch (const std::exception&) {
    // Nothing above throws on any input; only allocation can fail here.
    return failure<T>(malformed_json());
  }
}

} // namespace

parse_result<provider_registration>
parse_provider_registration(std::string_view body) {
  return parse_body<provider_registration>(
    body, empty_body::missing, [](object_fields& f, provider_registration& x) {
      x.via = transport::http;
      f.string("name", name_rule, x.name);
      f.string("base_url", url_rule, x.base_url);
      f.string("description", description_rule, x.description);
      f.string("provider_key", optional_id_rule, x.provider_key);
      f.string("provider_id", optional_id_rule, x.provider_id);
      f.bots("bots", x.bots);
      f.string("instance_id", instance_id_rule, x.instance_id);
      f.number("heartbeat_interval", heartbeat_interval_rule,
               x.heartbeat_interval);
      x.has_runs = f.runs("runs", x.runs);
    });
}

parse_result<heartbeat> parse_heartbeat(std::string_view body) {
  return parse_body<heartbeat>(body, empty_body::empty_object,
                               [](object_fields& f, heartbeat& x) {
                                 x.has_bots = f.bots("bots", x.bots);
                                 f.string("instance_id", instance_id_rule,
                                          x.instance_id);
                                 f.number("load", load_rule, x.load);
                                 f.count("capacity", x.capacity);
                                 x.has_runs = f.runs("runs", x.runs);
                               });
}

parse_result<drain_request> parse_drain_request(std::string_view body) {
  return parse_body<drain_request>(
    body, empty_body::empty_object, [](object_fields& f, drain_request& x) {
      x.by_operator = true;
      f.string("provider_key", optional_id_rule, x.provider_key);
      f.number("timeout", drain_timeout_rule, x.timeout);
    });
}

parse_result<lobby_create> parse_lobby_create(std::string_view body) {
  return parse_body<lobby_create>(body, empty_body::missing,
                                  [](object_fields& f, lobby_create& x) {
                                    f.string("name", name_rule, x.name);
                                    f.boolean("private", x.is_private);
                                  });
}

parse_result<session_create> parse_session_create(std::string_view body) {
  return parse_body<session_create>(body, empty_body::missing,
                                    [](object_fields& f, session_create& x) {
                                      f.string("nick", name_rule, x.nick);
                                    });
}

parse_result<join_request> parse_join_request(std::string_view body) {
  return parse_body<join_request>(
    body, empty_body::missing, [](object_fields& f, join_request& x) {
      f.string("lobby_id", required_id_rule, x.lobby_id);
      f.string("nick", optional_nick_rule, x.nick);
      f.string("provider_id", optional_id_rule, x.provider_id);
    });
}

parse_result<leave_request> parse_leave_request(std::string_view body) {
  return parse_body<leave_request>(
    body, empty_body::missing, [](object_fields& f, leave_request& x) {
      f.string("session_id", required_id_rule, x.session_id);
      f.string("lobby_id", optional_id_rule, x.lobby_id);
    });
}

parse_result<chat_line> parse_chat_line(std::string_view message) {
  return parse_body<chat_line>(
    message, empty_body::missing, [](object_fields& f, chat_line& x) {
      f.constant("type", "chat");
      f.string("nick", name_rule, x.nick);
      f.string("text", chat_text_rule, x.text);
    });
}

std::vector<field_error>
check_provider_registration(const provider_registration& x) {
  std::vector<field_error> errors;
  auto body = json::array({"body"});
  auto check = [&](const char* key, const std::string& value,
                   const string_rule& rule) {
    return record(check_text(value, at(body, key), rule), errors);
  };
  check("name", x.name, name_rule);
  check("base_url", x.base_url, url_rule);
  check("description", x.description, description_rule);
  check("provider_key", x.provider_key, optional_id_rule);
  check("provider_id", x.provider_id, optional_id_rule);
  check_bots(x.bots, at(body, "bots"), errors);
  check("instance_id", x.instance_id, instance_id_rule);
  if (x.heartbeat_interval != 0) // 0: not given
    record(check_number(x.heartbeat_interval, at(body, "heartbeat_interval"),
                        heartbeat_interval_rule),
           errors);
  check_runs(x.runs, at(body, "runs"), errors);
  return errors;
}

std::vector<field_error> check_heartbeat(const heartbeat& x) {
  std::vector<field_error> errors;
  auto body = json::array({"body"});
  check_bots(x.bots, at(body, "bots"), errors);
  record(check_text(x.instance_id, at(body, "instance_id"), instance_id_rule),
         errors);
  if (!(x.load < 0)) // negative: not given; NaN is checked (and refused)
    record(check_number(x.load, at(body, "load"), load_rule), errors);
  // capacity: any negative is "not given", and every other int64_t is valid.
  check_runs(x.runs, at(body, "runs"), errors);
  return errors;
}

std::optional<field_error> check_bot_name_path(std::string_view s) {
  return check_text(s, json::array({"path", "bot_name"}), bot_name_rule);
}

std::optional<field_error> check_id_path(std::string_view s,
                                         std::string_view name) {
  return check_text(s, json::array({"path", std::string{name}}),
                    required_id_rule);
}

std::optional<field_error> check_idempotency_key(std::string_view value) {
  auto loc = json::array({"header", "idempotency-key"});
  if (value.empty())
    return too_short(loc, 1);
  if (value.size() > max_id_length) // 128, like every id
    return too_long(loc, max_id_length);
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7F)
      return not_printable(loc);
    if (c > 0x7F) // header bytes are not UTF-8 text: no code points here
      return not_ascii(loc);
  }
  return std::nullopt;
}

} // namespace vb
