// Request parsing and validation (SPEC §2, §5), with the error shapes of the
// original server (FastAPI 0.92 + pydantic 1.10), which the frontend reads:
//   422 {"detail":[{"loc":["body","name"],"msg":"field required",
//                   "type":"value_error.missing"}],"code":"validation_error"}
//   400 {"detail":"Malformed JSON body","code":"malformed_json"}
//
// Every parse_* function checks the nesting depth with json_depth() before
// nlohmann parses anything, never throws, collects every field error in
// field order, and ignores unknown fields (pydantic's default).
//
// Decisions beyond pydantic:
// - strings must be JSON strings: numbers are not coerced to text, and
//   booleans must be JSON booleans;
// - null in an optional field, or "" in an optional id field, means "not
//   given"; null in a required field is "none is not an allowed value";
// - an empty body, or the body `null`, is "field required" at ["body"]
//   (FastAPI's answer), except for heartbeats and drains, where it means {};
// - numbers must be JSON numbers (not strings or booleans), and an integer
//   field takes an integral number only (2.5 is refused, not truncated);
// - invalid UTF-8 anywhere in a body is malformed JSON (400); in a string
//   that did not come from JSON (path, CAF) it is "value_error.str.utf8";
// - control characters (C0, DEL, C1) are "value_error.str.printable".
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/types.hpp"

namespace vb {

struct field_error {
  nlohmann::json loc; // e.g. ["body", "bots", 0, "name"]
  std::string msg;
  std::string type;
  nlohmann::json ctx; // null when none
};

struct request_error {
  int status = 422;                // 400 malformed JSON, 422 validation
  std::string code;                // "validation_error", "malformed_json",
                                   // "json_too_deep"
  std::string detail;              // for non-422
  std::vector<field_error> errors; // for 422
};

/// The FastAPI body: 422 → {"detail":[{"loc":[...],"msg":...,"type":...,
/// ("ctx":{...})}],"code":"validation_error"}; else {"detail":"...","code":"..."}.
std::string render(const request_error& e);

/// Any error: {"detail": detail, "code": code} as a string (used for 404 etc.
/// everywhere). Never throws, even on invalid UTF-8 (replaced by U+FFFD).
std::string error_body(std::string_view detail, std::string_view code);

template <class T>
struct parse_result {
  std::optional<T> value;
  request_error error;
  explicit operator bool() const noexcept {
    return value.has_value();
  }
};

constexpr std::size_t max_json_depth = 64;

/// Nesting depth of a JSON text by a linear scan that respects strings and
/// escapes (no parsing, no allocation): 0 for a scalar, 1 for `{}` or `[1]`.
std::size_t json_depth(std::string_view text);

// -- limits (SPEC §2) --------------------------------------------------------

constexpr std::size_t max_name_length = 64;          // nick, lobby, provider,
                                                     // bot names
constexpr std::size_t max_description_length = 1024; // code points
constexpr std::size_t max_url_length = 2048;
constexpr std::size_t max_id_length = 128; // provider_key and every id
constexpr std::size_t max_bots = 256;      // bots in one registration
constexpr std::string_view bot_name_pattern = "^[A-Za-z0-9_.-]{1,64}$";
constexpr std::size_t max_chat_length = 2000; // one chat line, code points

// -- limits (SPEC §7) --------------------------------------------------------

constexpr std::size_t max_instance_id_length = 64; // code points
constexpr double min_heartbeat_interval = 0.05;    // seconds
constexpr double max_heartbeat_interval = 3600;    // seconds
constexpr std::size_t max_runs = 100000; // run ids in one registration or
                                         // heartbeat
constexpr double max_drain_timeout = 86400; // seconds

// -- request bodies ------------------------------------------------------------

/// POST /api/bots/providers/register; via is transport::http. `runs` (run
/// id strings, or objects with a "run_id") sets has_runs, even when empty.
parse_result<provider_registration>
parse_provider_registration(std::string_view body);

/// POST /api/bots/providers/{id}/heartbeat; an empty body means {}.
parse_result<heartbeat> parse_heartbeat(std::string_view body);

/// POST /api/bots/providers/{id}/drain; an empty body means {} (no key, the
/// server's drain_timeout). by_operator is true: the drain route is an
/// operator's.
parse_result<drain_request> parse_drain_request(std::string_view body);

/// POST /api/lobby.
parse_result<lobby_create> parse_lobby_create(std::string_view body);

/// POST /api/lobby/{lobby_id}/sessions.
parse_result<session_create> parse_session_create(std::string_view body);

/// POST /api/bots/{bot_name}/join.
parse_result<join_request> parse_join_request(std::string_view body);

/// POST /api/bots/leave.
parse_result<leave_request> parse_leave_request(std::string_view body);

/// A chat line from a lobby page over the WebSocket:
/// {"type":"chat","nick":...,"text":...}.
struct chat_line {
  std::string nick;
  std::string text;
};

/// One WebSocket message of a lobby page; locs are ["body", field]. The
/// text may hold newlines and tabs, up to max_chat_length code points.
parse_result<chat_line> parse_chat_line(std::string_view message);

/// The rules of parse_provider_registration applied to a registration that
/// did not come from JSON (the CAF gateway); locs as for the HTTP body.
/// Empty when valid.
std::vector<field_error>
check_provider_registration(const provider_registration& x);

/// The rules of parse_heartbeat applied to a heartbeat that did not come from
/// JSON (a CAF provider's); a negative load or capacity is "not given".
/// Empty when valid.
std::vector<field_error> check_heartbeat(const heartbeat& x);

// -- single values -------------------------------------------------------------

/// `[A-Za-z0-9_.-]{1,64}`.
bool valid_bot_name(std::string_view s);

/// The {bot_name} path parameter; loc ["path","bot_name"].
std::optional<field_error> check_bot_name_path(std::string_view s);

/// An id path parameter ({lobby_id}, {provider_id}, {session_id}): 1 to 128
/// printable characters; loc ["path", name].
std::optional<field_error> check_id_path(std::string_view s,
                                         std::string_view name);

/// The Idempotency-Key request header (SPEC §7): 1 to 128 printable ASCII
/// characters (0x20 to 0x7E); loc ["header","idempotency-key"].
std::optional<field_error> check_idempotency_key(std::string_view value);

/// Well-formed UTF-8 (no overlong forms, surrogates or code points past
/// U+10FFFF).
bool valid_utf8(std::string_view s);

/// Number of code points of a valid UTF-8 string.
std::size_t utf8_length(std::string_view s);

/// Valid UTF-8 without C0 controls, DEL or C1 controls; `allow_newline_tab`
/// lets \n and \t through (descriptions).
bool printable(std::string_view s, bool allow_newline_tab = false);

} // namespace vb
