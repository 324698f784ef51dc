// Fuzz target json_bodies: every request body parser and path/header check
// of model/validate.hpp, the code every HTTP request body and path goes
// through before anything else sees it (docs/fuzzing.md).
//
// Input: byte 0 selects the parser (modulo the number of them), the rest is
// the body, path segment or header value. Beyond "no crash", it checks the
// contract of the parsers: a failure is a 400 or a 422 whose rendered body
// is a JSON object in the FastAPI shape, and a body accepted over HTTP also
// passes the checks the CAF gateway applies to the same value.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_util.hpp"
#include "model/validate.hpp"

namespace {

using nlohmann::json;

/// The FastAPI shape of a refusal (model/validate.hpp).
void check_error(const vb::request_error& e) {
  VB_FUZZ_CHECK(e.status == 400 || e.status == 422);
  VB_FUZZ_CHECK(!e.code.empty());
  auto text = vb::render(e);
  VB_FUZZ_CHECK(!text.empty());
  auto j = json::parse(text, nullptr, false);
  VB_FUZZ_CHECK(!j.is_discarded() && j.is_object());
  VB_FUZZ_CHECK(j.contains("detail") && j.contains("code"));
  if (e.status == 422) {
    VB_FUZZ_CHECK(!e.errors.empty());
    VB_FUZZ_CHECK(j["detail"].is_array());
    for (auto& fe : e.errors) {
      VB_FUZZ_CHECK(fe.loc.is_array() && !fe.loc.empty());
      VB_FUZZ_CHECK(!fe.msg.empty() && !fe.type.empty());
    }
  } else {
    VB_FUZZ_CHECK(j["detail"].is_string());
  }
}

template <class T>
const T* check_result(const vb::parse_result<T>& r) {
  if (r)
    return &*r.value;
  check_error(r.error);
  return nullptr;
}

/// Whether the body was accepted; an accepted value must pass `check` too.
template <class T, class Check = void (*)(const T&)>
bool accepts(const vb::parse_result<T>& r,
             Check check = [](const T&) {}) {
  const T* v = check_result(r);
  if (v)
    check(*v);
  return v != nullptr;
}

/// The bodies with no rules but their parser's (selectors 0, 1, 5, 6, 7):
/// whether the body was accepted.
bool plain_body_accepted(uint8_t which, std::string_view body) {
  switch (which) {
    case 0: return accepts(vb::parse_lobby_create(body));
    case 1: return accepts(vb::parse_session_create(body));
    case 5: return accepts(vb::parse_join_request(body));
    case 6: return accepts(vb::parse_leave_request(body));
    default: return accepts(vb::parse_chat_line(body));
  }
}

/// A path parameter's or header's error names where it came from.
void check_field(const vb::field_error& e, std::string_view where,
                 std::string_view name) {
  VB_FUZZ_CHECK(e.loc.is_array() && e.loc.size() == 2);
  VB_FUZZ_CHECK(e.loc[0] == where && e.loc[1] == name);
  VB_FUZZ_CHECK(!e.msg.empty() && !e.type.empty());
}

bool printable_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7e)
      return false;
  return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vb::fuzz::input in(data, size);
  auto which = in.byte();
  auto body = in.rest();
  // A body deeper than the limit is refused before nlohmann sees it.
  bool too_deep = vb::json_depth(body) > vb::max_json_depth;
  bool accepted = false;
  switch (which % 12) {
    case 0:
    case 1:
    case 5:
    case 6:
    case 7:
      accepted = plain_body_accepted(which % 12, body);
      break;
    case 2:
      // The gateway's rules are the HTTP body's rules.
      accepted = accepts(vb::parse_provider_registration(body), [](auto& v) {
        VB_FUZZ_CHECK(vb::check_provider_registration(v).empty());
      });
      break;
    case 3:
      accepted = accepts(vb::parse_heartbeat(body), [](auto& v) {
        VB_FUZZ_CHECK(vb::check_heartbeat(v).empty());
      });
      break;
    case 4:
      accepted = accepts(vb::parse_drain_request(body),
                         [](auto& v) { VB_FUZZ_CHECK(v.by_operator); });
      break;
    case 8: {
      // {lobby_id}, {provider_id}, {session_id}: 1 to 128 printable.
      auto e = vb::check_id_path(body, "lobby_id");
      if (e)
        check_field(*e, "path", "lobby_id");
      else
        VB_FUZZ_CHECK(!body.empty() && vb::printable(body)
                      && vb::utf8_length(body) <= vb::max_id_length);
      return 0;
    }
    case 9: {
      auto e = vb::check_bot_name_path(body);
      VB_FUZZ_CHECK(e.has_value() != vb::valid_bot_name(body));
      if (e)
        check_field(*e, "path", "bot_name");
      return 0;
    }
    case 10: {
      auto e = vb::check_idempotency_key(body);
      if (e)
        check_field(*e, "header", "idempotency-key");
      else
        VB_FUZZ_CHECK(!body.empty() && body.size() <= vb::max_id_length
                      && printable_ascii(body));
      return 0;
    }
    default: {
      // The single-value helpers, and the body every other error uses.
      if (vb::printable(body, true))
        VB_FUZZ_CHECK(vb::valid_utf8(body));
      if (vb::valid_utf8(body))
        VB_FUZZ_CHECK(vb::utf8_length(body) <= body.size());
      auto text = vb::error_body(body, body);
      auto j = json::parse(text, nullptr, false);
      VB_FUZZ_CHECK(!j.is_discarded() && j.is_object());
      return 0;
    }
  }
  if (too_deep)
    VB_FUZZ_CHECK(!accepted);
  return 0;
}
