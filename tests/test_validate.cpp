// model/validate: request bodies, their FastAPI/pydantic-1.10 error shapes,
// the depth check, UTF-8 and the single-value checks.
#include <catch2/catch.hpp>

#include <chrono>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/url.hpp"
#include "model/validate.hpp"

using nlohmann::json;
using namespace vb;

namespace {

/// Checks one field error against what pydantic 1.10 reports.
void check_error(const field_error& e, const json& loc, const std::string& msg,
                 const std::string& type, const json& ctx = nullptr) {
  CHECK(e.loc == loc);
  CHECK(e.msg == msg);
  CHECK(e.type == type);
  CHECK(e.ctx == ctx);
}

/// The errors of a failed 422 parse: exactly `n` of them.
template <class T>
std::vector<field_error> errors_of(const parse_result<T>& r, size_t n) {
  REQUIRE_FALSE(r);
  CHECK(r.error.status == 422);
  CHECK(r.error.code == "validation_error");
  REQUIRE(r.error.errors.size() == n);
  return r.error.errors;
}

/// The only error of a failed 422 parse.
template <class T>
field_error only_error(const parse_result<T>& r) {
  return errors_of(r, 1)[0];
}

/// A registration body with one field replaced (or added).
std::string registration_with(const std::string& key, const json& value) {
  json j{{"name", "voicebot"},
         {"base_url", "http://voicebot:8788"},
         {"bots", json::array({json{{"name", "echo"}, {"description", "x"}}})}};
  j[key] = value;
  return j.dump();
}

std::string repeat(const std::string& s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i)
    out += s;
  return out;
}

json bots_of(std::size_t n) {
  auto bots = json::array();
  for (std::size_t i = 0; i < n; ++i)
    bots.push_back(json{{"name", "bot" + std::to_string(i)}});
  return bots;
}

const json min_1{{"limit_value", 1}};
const json max_64{{"limit_value", 64}};

} // namespace

// -- json_depth --------------------------------------------------------------------

TEST_CASE("validate: json_depth counts nesting, ignoring strings",
          "[validate][depth]") {
  CHECK(json_depth("") == 0);
  CHECK(json_depth("42") == 0);
  CHECK(json_depth("\"[[[{{{\"") == 0);
  CHECK(json_depth("{}") == 1);
  CHECK(json_depth("[1,2,3]") == 1);
  CHECK(json_depth("[[]]") == 2);
  CHECK(json_depth(R"({"a":[{"b":1}],"c":{}})") == 3);
  CHECK(json_depth(R"([[1],[2],[3]])") == 2); // siblings do not add up
  CHECK(json_depth(R"({"a":"]]]{{{[[["})") == 1);
  CHECK(json_depth(R"({"a":"\"[[[", "b":[]})") == 2);   // escaped quote
  CHECK(json_depth(R"(["\\", [[1]]])") == 3);           // escaped backslash
  CHECK(json_depth(R"(["\\\"[[", 1])") == 1);           // \\ then \"
  CHECK(json_depth(R"({"k\"}":{"x":"}"}})") == 2);
  CHECK(json_depth("]]]][") == 1); // unbalanced closers do not go negative
  CHECK(json_depth(std::string(1000, '[')) == 1000);
  CHECK(json_depth(std::string(64, '[') + std::string(64, ']')) == 64);
}

TEST_CASE("validate: bodies nested deeper than 64 are refused before parsing",
          "[validate][depth]") {
  // Depth 64 passes the check (the field is then of the wrong type).
  auto at_limit = "{\"name\":" + std::string(63, '[') + std::string(63, ']') + "}";
  REQUIRE(json_depth(at_limit) == 64);
  auto r = parse_lobby_create(at_limit);
  check_error(only_error(r), json{"body", "name"}, "str type expected",
              "type_error.str");

  auto past_limit = "{\"name\":" + std::string(64, '[') + std::string(64, ']') + "}";
  auto deep = parse_lobby_create(past_limit);
  REQUIRE_FALSE(deep);
  CHECK(deep.error.status == 422);
  CHECK(deep.error.code == "json_too_deep");
  REQUIRE(deep.error.errors.size() == 1);
  check_error(deep.error.errors[0], json{"body"},
              "JSON nested deeper than 64 levels", "value_error.json_too_deep");
  CHECK(json::parse(render(deep.error)) == json::parse(R"({"detail":[{"loc":["body"],
    "msg":"JSON nested deeper than 64 levels","type":"value_error.json_too_deep"}],
    "code":"json_too_deep"})"));
}

TEST_CASE("validate: a 100,000-deep body is refused quickly",
          "[validate][depth]") {
  const std::string open(100000, '[');
  const std::string balanced = open + std::string(100000, ']');
  auto start = std::chrono::steady_clock::now();
  for (const auto* body : {&open, &balanced}) {
    CHECK(parse_join_request(*body).error.code == "json_too_deep");
    CHECK(parse_provider_registration(*body).error.code == "json_too_deep");
    CHECK(parse_heartbeat(*body).error.code == "json_too_deep");
  }
  auto objects = repeat("{\"a\":", 100000);
  CHECK(parse_lobby_create(objects).error.code == "json_too_deep");
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed < std::chrono::seconds(1)); // a linear scan: ~1 ms
}

// -- malformed bodies --------------------------------------------------------------

TEST_CASE("validate: malformed JSON is 400", "[validate][malformed]") {
  for (std::string body :
       {"{", "{\"name\": }", "nope", "{} x", "{'name': 'single'}",
        "{\"name\":\"unterminated}", "[1,]", "{\"a\":1,}", "NaN",
        "{\"a\":1e99999}"}) {
    INFO(body);
    auto r = parse_lobby_create(body);
    REQUIRE_FALSE(r);
    CHECK(r.error.status == 400);
    CHECK(r.error.code == "malformed_json");
    CHECK(r.error.detail == "Malformed JSON body");
    CHECK(r.error.errors.empty());
    CHECK(json::parse(render(r.error))
          == json{{"detail", "Malformed JSON body"}, {"code", "malformed_json"}});
  }
}

TEST_CASE("validate: invalid UTF-8 in a body is malformed JSON",
          "[validate][malformed][utf8]") {
  const std::vector<std::string> bodies{
    "{\"name\":\"\xff\"}",                 // not UTF-8 at all
    "{\"name\":\"\xc0\xaf\"}",             // overlong '/'
    "{\"name\":\"\xed\xa0\x80\"}",         // encoded surrogate
    "{\"name\":\"caf\xc3\"}",              // truncated sequence
    "\xef\xbb\xbf\xff{}",                  // garbage outside strings
    "{\"name\":\"\\ud800\"}",              // lone surrogate escape
    "{\"name\":\"\\udc00\\ud800\"}",       // reversed pair
    std::string("{\"name\":\"a\0b\"}", 14) // raw NUL
  };
  for (const auto& body : bodies) {
    INFO(body);
    parse_result<lobby_create> r;
    CHECK_NOTHROW(r = parse_lobby_create(body));
    REQUIRE_FALSE(r);
    CHECK(r.error.status == 400);
    CHECK(r.error.code == "malformed_json");
    CHECK_NOTHROW(render(r.error));
  }
  // Escapes of real characters are fine, surrogate pairs included.
  auto ok = parse_lobby_create(R"({"name":"caf\u00e9 \ud83d\ude00"})");
  REQUIRE(ok);
  CHECK(ok.value->name == "caf\xc3\xa9 \xf0\x9f\x98\x80");
}

TEST_CASE("validate: a body that is not an object", "[validate][body]") {
  for (std::string body : {"[]", "[{\"name\":\"x\"}]", "42", "\"name\"", "true"}) {
    INFO(body);
    check_error(only_error(parse_lobby_create(body)), json{"body"},
                "value is not a valid dict", "type_error.dict");
    check_error(only_error(parse_heartbeat(body)), json{"body"},
                "value is not a valid dict", "type_error.dict");
  }
  // No body, or null, is a missing body (FastAPI's answer)...
  for (std::string body : {"", "  \r\n", "null", " null "}) {
    INFO(body);
    check_error(only_error(parse_join_request(body)), json{"body"},
                "field required", "value_error.missing");
  }
  // ...except for a heartbeat, where it means {}.
  for (std::string body : {"", "\n", "null", "{}"}) {
    auto hb = parse_heartbeat(body);
    REQUIRE(hb);
    CHECK_FALSE(hb.value->has_bots);
  }
}

// -- rendering -----------------------------------------------------------------------

TEST_CASE("validate: rendered errors parse back to FastAPI's shape",
          "[validate][render]") {
  auto r = parse_provider_registration(R"({"bots":[{"name":""}]})");
  REQUIRE_FALSE(r);
  auto body = json::parse(render(r.error));
  CHECK(body["code"] == "validation_error");
  REQUIRE(body["detail"].is_array());
  REQUIRE(body["detail"].size() == 2);
  CHECK(body["detail"][0]
        == json::parse(R"({"loc":["body","name"],"msg":"field required",
                           "type":"value_error.missing"})"));
  CHECK(body["detail"][1]
        == json::parse(R"({"loc":["body","bots",0,"name"],
          "msg":"ensure this value has at least 1 characters",
          "type":"value_error.any_str.min_length","ctx":{"limit_value":1}})"));
  CHECK(body.size() == 2);

  CHECK(json::parse(error_body("Bot not found", "bot_not_found"))
        == json{{"detail", "Bot not found"}, {"code", "bot_not_found"}});
  request_error not_found;
  not_found.status = 404;
  not_found.code = "lobby_not_found";
  not_found.detail = "Lobby not found";
  CHECK(render(not_found) == error_body("Lobby not found", "lobby_not_found"));
  // Invalid UTF-8 from a path never makes rendering throw.
  std::string text;
  CHECK_NOTHROW(text = error_body("Bot '\xff' not found", "bot_not_found"));
  CHECK(json::parse(text)["detail"] == "Bot '\xef\xbf\xbd' not found");
}

// -- provider registration -------------------------------------------------------------

TEST_CASE("validate: a valid registration gives its values",
          "[validate][register]") {
  auto r = parse_provider_registration(R"({
    "name": "voicebot", "base_url": "https://bots.example.com:8443/vb",
    "description": "line one\n\tline two", "provider_key": "k-123",
    "provider_id": "p-1", "unknown": {"ignored": true},
    "bots": [{"name": "ai_chatbot", "description": "Chats"}, {"name": "echo.v2-x_y"}]})");
  REQUIRE(r);
  const auto& x = *r.value;
  CHECK(x.name == "voicebot");
  CHECK(x.base_url == "https://bots.example.com:8443/vb");
  CHECK(x.description == "line one\n\tline two");
  CHECK(x.provider_key == "k-123");
  CHECK(x.provider_id == "p-1");
  CHECK(x.via == transport::http);
  REQUIRE(x.bots.size() == 2);
  CHECK(x.bots[0].name == "ai_chatbot");
  CHECK(x.bots[0].description == "Chats");
  CHECK(x.bots[1].name == "echo.v2-x_y");
  CHECK(x.bots[1].description.empty());

  // Only a name is needed; "" and null in optional fields mean "not given".
  auto minimal = parse_provider_registration(R"({"name":"n","base_url":"",
    "provider_id":"","provider_key":null,"description":null,"bots":null})");
  REQUIRE(minimal);
  CHECK(minimal.value->base_url.empty());
  CHECK(minimal.value->provider_id.empty());
  CHECK(minimal.value->provider_key.empty());
  CHECK(minimal.value->description.empty());
  CHECK(minimal.value->bots.empty());
}

TEST_CASE("validate: registration collects every error in field order",
          "[validate][register]") {
  auto r = parse_provider_registration(R"({"name": 5, "base_url": "ftp://x",
    "description": 7, "provider_key": [], "provider_id": false,
    "bots": [{"name": "bad name"}, 3, {"description": "no name"}, {"name": "ok", "description": 1}]})");
  REQUIRE_FALSE(r);
  CHECK(r.error.status == 422);
  const auto& e = r.error.errors;
  REQUIRE(e.size() == 9);
  check_error(e[0], json{"body", "name"}, "str type expected", "type_error.str");
  check_error(e[1], json{"body", "base_url"}, "URL scheme not permitted",
              "value_error.url.scheme",
              json{{"allowed_schemes", json::array({"http", "https"})}});
  check_error(e[2], json{"body", "description"}, "str type expected",
              "type_error.str");
  check_error(e[3], json{"body", "provider_key"}, "str type expected",
              "type_error.str");
  check_error(e[4], json{"body", "provider_id"}, "str type expected",
              "type_error.str");
  check_error(e[5], json{"body", "bots", 0, "name"},
              "string does not match regex \"^[A-Za-z0-9_.-]{1,64}$\"",
              "value_error.str.regex",
              json{{"pattern", "^[A-Za-z0-9_.-]{1,64}$"}});
  check_error(e[6], json{"body", "bots", 1}, "value is not a valid dict",
              "type_error.dict");
  check_error(e[7], json{"body", "bots", 2, "name"}, "field required",
              "value_error.missing");
  check_error(e[8], json{"body", "bots", 3, "description"}, "str type expected",
              "type_error.str");
}

TEST_CASE("validate: registration name rules", "[validate][register][strings]") {
  auto name_error = [](const json& value) {
    return only_error(parse_provider_registration(registration_with("name", value)));
  };
  check_error(only_error(parse_provider_registration(R"({"bots":[]})")),
              json{"body", "name"}, "field required", "value_error.missing");
  check_error(name_error(nullptr), json{"body", "name"},
              "none is not an allowed value", "type_error.none.not_allowed");
  check_error(name_error(""), json{"body", "name"},
              "ensure this value has at least 1 characters",
              "value_error.any_str.min_length", min_1);
  check_error(name_error(std::string(65, 'a')), json{"body", "name"},
              "ensure this value has at most 64 characters",
              "value_error.any_str.max_length", max_64);
  check_error(name_error(true), json{"body", "name"}, "str type expected",
              "type_error.str");
  check_error(name_error(json::object()), json{"body", "name"},
              "str type expected", "type_error.str");
  for (const auto& bad : std::vector<std::string>{
         "a\nb", "tab\there", std::string("nul\0", 4), "del\x7f", "c1\xc2\x85",
         "esc\x1b[31m"}) {
    INFO(bad);
    check_error(name_error(bad), json{"body", "name"},
                "string contains control characters", "value_error.str.printable");
  }
  // Lengths count code points, not bytes.
  auto e_acute = std::string("\xc3\xa9");
  CHECK(parse_provider_registration(registration_with("name", repeat(e_acute, 64))));
  check_error(name_error(repeat(e_acute, 65)), json{"body", "name"},
              "ensure this value has at most 64 characters",
              "value_error.any_str.max_length", max_64);
  CHECK(parse_provider_registration(
    registration_with("name", repeat("\xf0\x9f\x98\x80", 64)))); // 256 bytes
  CHECK(parse_provider_registration(registration_with("name", std::string(64, 'a'))));
  CHECK(parse_provider_registration(registration_with("name", "a b, c! \xe2\x82\xac")));
}

TEST_CASE("validate: description rules", "[validate][register][strings]") {
  auto with = [](const json& value) {
    return parse_provider_registration(registration_with("description", value));
  };
  CHECK(with(std::string(1024, 'd')));
  CHECK(with(repeat("\xe2\x82\xac", 1024))); // 1024 code points, 3072 bytes
  CHECK(with("multi\nline\twith tabs"));
  check_error(only_error(with(std::string(1025, 'd'))), json{"body", "description"},
              "ensure this value has at most 1024 characters",
              "value_error.any_str.max_length", json{{"limit_value", 1024}});
  check_error(only_error(with("carriage\rreturn")), json{"body", "description"},
              "string contains control characters", "value_error.str.printable");
  check_error(only_error(with(42)), json{"body", "description"},
              "str type expected", "type_error.str");
}

TEST_CASE("validate: base_url rules", "[validate][register][url]") {
  auto url_error = [](const json& value) {
    return only_error(parse_provider_registration(registration_with("base_url", value)));
  };
  const json loc{"body", "base_url"};
  for (std::string good :
       {"http://voicebot:8788", "https://bots.example.com:8443/path",
        "HTTPS://Example.COM", "http://10.0.0.7", "http://[::1]:8080/",
        "http://localhost:65535", "http://host:1/x/y/"}) {
    INFO(good);
    auto r = parse_provider_registration(registration_with("base_url", good));
    REQUIRE(r);
    CHECK(r.value->base_url == good);
  }
  for (std::string bad : {"example.com", "//example.com", "://x", "h://x",
                          "1http://x", "http:/x"}) {
    INFO(bad);
    check_error(url_error(bad), loc, "invalid or missing URL scheme",
                "value_error.url.scheme");
  }
  for (std::string bad : {"ftp://example.com", "file:///etc/passwd",
                          "javascript://x", "ws://host"}) {
    INFO(bad);
    check_error(url_error(bad), loc, "URL scheme not permitted",
                "value_error.url.scheme",
                json{{"allowed_schemes", json::array({"http", "https"})}});
  }
  for (std::string bad : {"http://", "https:///path", "http://:8080",
                          "http://ho!st", "http://[::1", "http://[zz]",
                          "http://b\xc3\xbc" "cher.example/", "http://127.1/"}) {
    INFO(bad);
    check_error(url_error(bad), loc, "URL host invalid", "value_error.url.host");
  }
  for (std::string bad : {"http://host:99999", "http://host:", "http://host:8o",
                          "http://host:0"}) {
    INFO(bad);
    check_error(url_error(bad), loc, "URL port invalid, port cannot exceed 65535",
                "value_error.url.port");
  }
  for (std::string bad : {"http://exa mple.com", " http://x", "http://x\t",
                          "http://x/\n", "http://x/\xc2\xa0"}) {
    INFO(bad);
    check_error(url_error(bad), loc, "invalid URL format", "value_error.url");
  }
  for (std::string bad : {"http://user:pw@127.0.0.1:9000", "http://user@host/",
                          "http://user@"}) {
    INFO(bad);
    check_error(url_error(bad), loc,
                "URL must not contain user info (user:password@)",
                "value_error.url.userinfo");
  }
  for (std::string bad : {"https://bots.example.com/path?q=1#frag",
                          "http://host?x=1", "http://host/#top"}) {
    INFO(bad);
    check_error(url_error(bad), loc,
                "URL must not contain a query or fragment ('?', '#')",
                "value_error.url.query");
  }
  check_error(url_error("http://x/" + std::string(2040, 'p')), loc,
              "ensure this value has at most 2048 characters",
              "value_error.any_str.max_length", json{{"limit_value", 2048}});
  CHECK(parse_provider_registration(
    registration_with("base_url", "http://x/" + std::string(2039, 'p'))));
  check_error(url_error(8788), loc, "str type expected", "type_error.str");
}

TEST_CASE("validate: a base_url registers exactly when the provider link "
          "could call it",
          "[validate][register][url]") {
  // One grammar (model/url.hpp): a base_url the client would refuse as a
  // "bad url" is a 422 at registration, and one it accepts registers.
  for (std::string url :
       {"http://user:pw@127.0.0.1:9000", "http://127.0.0.1:9000",
        "http://[::1]:9000/p/", "http://h:0", "http://h:/", "http://h?x",
        "http://h#f", "http://b\xc3\xbc" "cher/", "http://127.1",
        "http://h/\xc3\xa9", "https://h/x", "http://a b", "http://h_1.x/"}) {
    INFO(url);
    bool registers = bool(parse_provider_registration(
      registration_with("base_url", url)));
    provider_registration r;
    r.name = "caf";
    r.base_url = url;
    bool checks = check_provider_registration(r).empty();
    bool callable = check_url(url) == url_error::none;
    CHECK(registers == callable);
    CHECK(checks == callable);
  }
}

TEST_CASE("validate: id and key fields are at most 128 characters",
          "[validate][register][strings]") {
  for (const char* key : {"provider_id", "provider_key"}) {
    INFO(key);
    CHECK(parse_provider_registration(registration_with(key, std::string(128, 'k'))));
    check_error(only_error(parse_provider_registration(
                  registration_with(key, std::string(129, 'k')))),
                json{"body", key}, "ensure this value has at most 128 characters",
                "value_error.any_str.max_length", json{{"limit_value", 128}});
    check_error(only_error(parse_provider_registration(registration_with(key, "a\nb"))),
                json{"body", key}, "string contains control characters",
                "value_error.str.printable");
  }
}

TEST_CASE("validate: bots list rules", "[validate][register][bots]") {
  auto bots_error = [](const json& value) {
    return only_error(parse_provider_registration(registration_with("bots", value)));
  };
  check_error(bots_error("echo"), json{"body", "bots"}, "value is not a valid list",
              "type_error.list");
  check_error(bots_error(json::object()), json{"body", "bots"},
              "value is not a valid list", "type_error.list");
  CHECK(parse_provider_registration(registration_with("bots", bots_of(256))));
  CHECK(parse_provider_registration(registration_with("bots", json::array())));
  check_error(bots_error(bots_of(257)), json{"body", "bots"},
              "ensure this value has at most 256 items", "value_error.list.max_items",
              json{{"limit_value", 256}});
  check_error(bots_error(json::array({"echo"})), json{"body", "bots", 0},
              "value is not a valid dict", "type_error.dict");
  check_error(bots_error(json::array({json{{"name", ""}}})),
              json{"body", "bots", 0, "name"},
              "ensure this value has at least 1 characters",
              "value_error.any_str.min_length", min_1);
  check_error(bots_error(json::array({json{{"name", std::string(65, 'b')}}})),
              json{"body", "bots", 0, "name"},
              "ensure this value has at most 64 characters",
              "value_error.any_str.max_length", max_64);
  for (std::string bad : {"a b", "caf\xc3\xa9", "slash/bot", "x:y", "bot\n"}) {
    INFO(bad);
    check_error(bots_error(json::array({json{{"name", bad}}})),
                json{"body", "bots", 0, "name"},
                "string does not match regex \"^[A-Za-z0-9_.-]{1,64}$\"",
                "value_error.str.regex", json{{"pattern", "^[A-Za-z0-9_.-]{1,64}$"}});
  }
  check_error(bots_error(json::array({json{{"name", "a"}, {"description", std::string(1025, 'd')}}})),
              json{"body", "bots", 0, "description"},
              "ensure this value has at most 1024 characters",
              "value_error.any_str.max_length", json{{"limit_value", 1024}});
}

TEST_CASE("validate: duplicate bot names are refused", "[validate][register][bots]") {
  auto r = parse_provider_registration(registration_with(
    "bots", json::parse(R"([{"name":"echo"},{"name":"greeter"},{"name":"echo"},
                            {"name":"bad name"},{"name":"echo"}])")));
  REQUIRE_FALSE(r);
  const auto& e = r.error.errors;
  REQUIRE(e.size() == 3);
  check_error(e[0], json{"body", "bots", 3, "name"},
              "string does not match regex \"^[A-Za-z0-9_.-]{1,64}$\"",
              "value_error.str.regex", json{{"pattern", "^[A-Za-z0-9_.-]{1,64}$"}});
  check_error(e[1], json{"body", "bots", 2, "name"}, "duplicate bot name \"echo\"",
              "value_error.duplicate");
  check_error(e[2], json{"body", "bots", 4, "name"}, "duplicate bot name \"echo\"",
              "value_error.duplicate");
  // Names are case-sensitive, like the pattern.
  CHECK(parse_provider_registration(registration_with(
    "bots", json::parse(R"([{"name":"Echo"},{"name":"echo"}])"))));
}

TEST_CASE("validate: a registration's heartbeat interval, instance and runs",
          "[validate][register][fleet]") {
  auto minimal = parse_provider_registration(R"({"name":"n"})");
  REQUIRE(minimal);
  CHECK(minimal.value->heartbeat_interval == 0); // not given
  CHECK(minimal.value->instance_id.empty());
  CHECK_FALSE(minimal.value->has_runs);
  CHECK(minimal.value->runs.empty());

  auto r = parse_provider_registration(R"({"name":"n","heartbeat_interval":2.5,
    "instance_id":"boot-1","runs":["r-1",{"run_id":"r-2","lobby_id":"l"}]})");
  REQUIRE(r);
  CHECK(r.value->heartbeat_interval == 2.5);
  CHECK(r.value->instance_id == "boot-1");
  CHECK(r.value->has_runs);
  CHECK(r.value->runs == std::vector<std::string>{"r-1", "r-2"});
  auto none = parse_provider_registration(registration_with("runs", json::array()));
  REQUIRE(none);
  CHECK(none.value->has_runs);
  auto null_runs = parse_provider_registration(registration_with("runs", nullptr));
  REQUIRE(null_runs);
  CHECK_FALSE(null_runs.value->has_runs);

  auto interval = [](const json& value) {
    return parse_provider_registration(registration_with("heartbeat_interval", value));
  };
  CHECK(interval(0.05).value->heartbeat_interval == 0.05);
  CHECK(interval(3600).value->heartbeat_interval == 3600);
  CHECK(interval(nullptr).value->heartbeat_interval == 0);
  for (double low : {0.0, 0.049, -1.0})
    check_error(only_error(interval(low)), json{"body", "heartbeat_interval"},
                "ensure this value is greater than or equal to 0.05",
                "value_error.number.not_ge", json{{"limit_value", 0.05}});
  check_error(only_error(interval(3600.5)), json{"body", "heartbeat_interval"},
              "ensure this value is less than or equal to 3600",
              "value_error.number.not_le", json{{"limit_value", 3600}});
  check_error(only_error(interval("5")), json{"body", "heartbeat_interval"},
              "value is not a valid float", "type_error.float");

  auto instance = [](const json& value) {
    return parse_provider_registration(registration_with("instance_id", value));
  };
  CHECK(instance(std::string(64, 'i')));
  CHECK(instance("").value->instance_id.empty()); // "" is not given
  check_error(only_error(instance(std::string(65, 'i'))), json{"body", "instance_id"},
              "ensure this value has at most 64 characters",
              "value_error.any_str.max_length", max_64);
  check_error(only_error(instance("a\nb")), json{"body", "instance_id"},
              "string contains control characters", "value_error.str.printable");
  check_error(only_error(instance(7)), json{"body", "instance_id"}, "str type expected",
              "type_error.str");

  check_error(only_error(parse_provider_registration(registration_with("runs", "r"))),
              json{"body", "runs"}, "value is not a valid list", "type_error.list");
  check_error(only_error(parse_provider_registration(
                registration_with("runs", json::array({json{{"run_id", 5}}})))),
              json{"body", "runs", 0, "run_id"}, "str type expected", "type_error.str");

  // The fleet's fields come after the original ones, in field order.
  auto all = errors_of(parse_provider_registration(R"({"name":"","runs":[1],
    "heartbeat_interval":0, "instance_id":""})"), 3);
  CHECK(all[0].loc == json{"body", "name"});
  CHECK(all[1].loc == json{"body", "heartbeat_interval"});
  CHECK(all[2].loc == json{"body", "runs", 0});
}

TEST_CASE("validate: the CAF registration struct follows the same rules",
          "[validate][register][caf]") {
  provider_registration x;
  x.name = "local";
  x.via = transport::caf;
  x.bots = {{"echo", "Repeats"}, {"greeter", ""}};
  CHECK(check_provider_registration(x).empty());

  x.name = "bad\xff";
  x.base_url = "gopher://x";
  x.provider_key = std::string(129, 'k');
  x.bots = {{"echo", ""}, {"no way", ""}, {"echo", "\x01"}};
  auto e = check_provider_registration(x);
  REQUIRE(e.size() == 6);
  check_error(e[0], json{"body", "name"}, "string is not valid UTF-8",
              "value_error.str.utf8");
  check_error(e[1], json{"body", "base_url"}, "URL scheme not permitted",
              "value_error.url.scheme",
              json{{"allowed_schemes", json::array({"http", "https"})}});
  check_error(e[2], json{"body", "provider_key"},
              "ensure this value has at most 128 characters",
              "value_error.any_str.max_length", json{{"limit_value", 128}});
  check_error(e[3], json{"body", "bots", 1, "name"},
              "string does not match regex \"^[A-Za-z0-9_.-]{1,64}$\"",
              "value_error.str.regex", json{{"pattern", "^[A-Za-z0-9_.-]{1,64}$"}});
  check_error(e[4], json{"body", "bots", 2, "description"},
              "string contains control characters", "value_error.str.printable");
  check_error(e[5], json{"body", "bots", 2, "name"}, "duplicate bot name \"echo\"",
              "value_error.duplicate");

  // The fleet's fields: 0 is "no interval announced" here, "" no instance.
  x = provider_registration{};
  x.name = "local";
  x.heartbeat_interval = 0;
  CHECK(check_provider_registration(x).empty());
  x.heartbeat_interval = 0.05;
  x.instance_id = std::string(64, 'i');
  CHECK(check_provider_registration(x).empty());
  x.heartbeat_interval = 0.01;
  x.instance_id = "a";
  e = check_provider_registration(x);
  REQUIRE(e.size() == 2);
  check_error(e[0], json{"body", "instance_id"}, "string contains control characters",
              "value_error.str.printable");
  check_error(e[1], json{"body", "heartbeat_interval"},
              "ensure this value is greater than or equal to 0.05",
              "value_error.number.not_ge", json{{"limit_value", 0.05}});
  x.instance_id.clear();
  for (double bad : {-1.0, 3601.0, std::numeric_limits<double>::quiet_NaN()}) {
    x.heartbeat_interval = bad;
    REQUIRE(check_provider_registration(x).size() == 1);
    CHECK(check_provider_registration(x)[0].loc == json{"body", "heartbeat_interval"});
  }

  x = provider_registration{};
  check_error(check_provider_registration(x).at(0), json{"body", "name"},
              "ensure this value has at least 1 characters",
              "value_error.any_str.min_length", min_1);
  x.name = "n";
  x.bots.assign(257, bot_info{"b", ""});
  e = check_provider_registration(x);
  REQUIRE(e.size() == 1);
  check_error(e[0], json{"body", "bots"}, "ensure this value has at most 256 items",
              "value_error.list.max_items", json{{"limit_value", 256}});
}

// -- heartbeat -------------------------------------------------------------------------

TEST_CASE("validate: heartbeat bodies", "[validate][heartbeat]") {
  auto hb = parse_heartbeat(R"({"bots":[{"name":"echo","description":"d"}],"load":0.5})");
  REQUIRE(hb);
  CHECK(hb.value->has_bots);
  REQUIRE(hb.value->bots.size() == 1);
  CHECK(hb.value->bots[0].name == "echo");
  CHECK(hb.value->load == 0.5);
  CHECK(hb.value->capacity < 0); // not given
  CHECK_FALSE(hb.value->has_runs);

  auto empty_list = parse_heartbeat(R"({"bots":[]})");
  REQUIRE(empty_list);
  CHECK(empty_list.value->has_bots); // an empty catalog is still a catalog
  CHECK(empty_list.value->bots.empty());

  auto no_bots = parse_heartbeat(R"({"bots":null,"capacity":4})");
  REQUIRE(no_bots);
  CHECK_FALSE(no_bots.value->has_bots);
  CHECK(no_bots.value->capacity == 4);
  CHECK(no_bots.value->load < 0); // not given

  auto empty = parse_heartbeat("");
  REQUIRE(empty);
  CHECK_FALSE(empty.value->has_bots);
  CHECK(empty.value->instance_id.empty());
  CHECK(empty.value->load < 0);
  CHECK(empty.value->capacity < 0);
  CHECK_FALSE(empty.value->has_runs);

  check_error(only_error(parse_heartbeat(R"({"bots":"echo"})")), json{"body", "bots"},
              "value is not a valid list", "type_error.list");
  check_error(only_error(parse_heartbeat(R"({"bots":[{"name":"x y"}]})")),
              json{"body", "bots", 0, "name"},
              "string does not match regex \"^[A-Za-z0-9_.-]{1,64}$\"",
              "value_error.str.regex", json{{"pattern", "^[A-Za-z0-9_.-]{1,64}$"}});
  check_error(only_error(parse_heartbeat(R"({"bots":[{"name":"a"},{"name":"a"}]})")),
              json{"body", "bots", 1, "name"}, "duplicate bot name \"a\"",
              "value_error.duplicate");
  check_error(only_error(parse_heartbeat(json{{"bots", bots_of(257)}}.dump())),
              json{"body", "bots"}, "ensure this value has at most 256 items",
              "value_error.list.max_items", json{{"limit_value", 256}});
}

TEST_CASE("validate: a heartbeat's load is 0 to 1 and its capacity an "
          "integer >= 0", "[validate][heartbeat][fleet]") {
  auto with = [](const char* key, const json& value) {
    return parse_heartbeat(json{{key, value}}.dump());
  };
  for (double load : {0.0, 0.25, 1.0}) {
    auto r = with("load", load);
    REQUIRE(r);
    CHECK(r.value->load == load);
  }
  CHECK(with("load", 1).value->load == 1); // an integer is a number
  check_error(only_error(with("load", -0.01)), json{"body", "load"},
              "ensure this value is greater than or equal to 0",
              "value_error.number.not_ge", json{{"limit_value", 0}});
  check_error(only_error(with("load", 1.5)), json{"body", "load"},
              "ensure this value is less than or equal to 1",
              "value_error.number.not_le", json{{"limit_value", 1}});
  for (const json& bad : {json("0.5"), json(true), json::array(), json::object()})
    check_error(only_error(with("load", bad)), json{"body", "load"},
                "value is not a valid float", "type_error.float");
  CHECK(with("load", nullptr).value->load < 0);

  CHECK(with("capacity", 0).value->capacity == 0);
  CHECK(with("capacity", 12).value->capacity == 12);
  CHECK(with("capacity", 2.0).value->capacity == 2); // integral
  CHECK(with("capacity", nullptr).value->capacity < 0);
  check_error(only_error(with("capacity", 2.5)), json{"body", "capacity"},
              "value is not a valid integer", "type_error.integer");
  check_error(only_error(with("capacity", -1)), json{"body", "capacity"},
              "ensure this value is greater than or equal to 0",
              "value_error.number.not_ge", json{{"limit_value", 0}});
  check_error(only_error(with("capacity", -3.0)), json{"body", "capacity"},
              "ensure this value is greater than or equal to 0",
              "value_error.number.not_ge", json{{"limit_value", 0}});
  for (const json& bad : {json("4"), json(false), json::array({1})})
    check_error(only_error(with("capacity", bad)), json{"body", "capacity"},
                "value is not a valid integer", "type_error.integer");
  auto huge = parse_heartbeat(R"({"capacity":1e30})");
  check_error(only_error(huge), json{"body", "capacity"},
              "ensure this value is less than or equal to 9223372036854775807",
              "value_error.number.not_le",
              json{{"limit_value", 9223372036854775807LL}});
  auto huge_integer = parse_heartbeat(R"({"capacity":18446744073709551615})");
  CHECK(only_error(huge_integer).type == "value_error.number.not_le");
}

TEST_CASE("validate: a heartbeat's runs and instance", "[validate][heartbeat][fleet]") {
  auto r = parse_heartbeat(R"({"instance_id":"boot 7","runs":["r-1",{"run_id":"r-2","bot":"echo"}],
    "load":0,"capacity":0})");
  REQUIRE(r);
  CHECK(r.value->instance_id == "boot 7");
  CHECK(r.value->has_runs);
  CHECK(r.value->runs == std::vector<std::string>{"r-1", "r-2"});
  CHECK(r.value->load == 0);
  CHECK(r.value->capacity == 0);

  auto none = parse_heartbeat(R"({"runs":[]})");
  REQUIRE(none);
  CHECK(none.value->has_runs); // "I run nothing" is not "I say nothing"
  CHECK(none.value->runs.empty());
  auto absent = parse_heartbeat(R"({"runs":null,"instance_id":""})");
  REQUIRE(absent);
  CHECK_FALSE(absent.value->has_runs);
  CHECK(absent.value->instance_id.empty());

  // Every error, in field order.
  auto bad = parse_heartbeat(json{{"runs", json::array({7, "", json{{"id", "x"}},
                                                          std::string(129, 'r'), "ok",
                                                          json{{"run_id", "a\tb"}}})},
                                  {"instance_id", std::string(65, 'i')},
                                  {"load", 2},
                                  {"capacity", 0.5}}
                               .dump());
  REQUIRE_FALSE(bad);
  const auto& e = bad.error.errors;
  REQUIRE(e.size() == 8);
  check_error(e[0], json{"body", "instance_id"},
              "ensure this value has at most 64 characters",
              "value_error.any_str.max_length", max_64);
  check_error(e[1], json{"body", "load"}, "ensure this value is less than or equal to 1",
              "value_error.number.not_le", json{{"limit_value", 1}});
  check_error(e[2], json{"body", "capacity"}, "value is not a valid integer",
              "type_error.integer");
  check_error(e[3], json{"body", "runs", 0}, "str type expected", "type_error.str");
  check_error(e[4], json{"body", "runs", 1},
              "ensure this value has at least 1 characters",
              "value_error.any_str.min_length", min_1);
  check_error(e[5], json{"body", "runs", 2, "run_id"}, "field required",
              "value_error.missing");
  check_error(e[6], json{"body", "runs", 3},
              "ensure this value has at most 128 characters",
              "value_error.any_str.max_length", json{{"limit_value", 128}});
  check_error(e[7], json{"body", "runs", 5, "run_id"},
              "string contains control characters", "value_error.str.printable");

  check_error(only_error(parse_heartbeat(R"({"runs":"r-1"})")), json{"body", "runs"},
              "value is not a valid list", "type_error.list");
  check_error(only_error(parse_heartbeat(R"({"instance_id":5})")),
              json{"body", "instance_id"}, "str type expected", "type_error.str");
  check_error(only_error(parse_heartbeat("{\"instance_id\":\"a\\u0007\"}")),
              json{"body", "instance_id"}, "string contains control characters",
              "value_error.str.printable");
  CHECK(parse_heartbeat(json{{"instance_id", std::string(64, 'i')}}.dump()));
  CHECK(parse_heartbeat(json{{"instance_id", "\xc3\xa9t\xc3\xa9"}}.dump()));
}

TEST_CASE("validate: at most 100,000 runs, and no item looked at past that",
          "[validate][fleet]") {
  auto runs = json::array();
  for (int i = 0; i < 100000; ++i)
    runs.push_back("r" + std::to_string(i));
  auto ok = parse_heartbeat(json{{"runs", runs}}.dump());
  REQUIRE(ok);
  CHECK(ok.value->runs.size() == 100000);
  runs.push_back(42); // one too many, and of the wrong type: only the count
  check_error(only_error(parse_heartbeat(json{{"runs", runs}}.dump())),
              json{"body", "runs"}, "ensure this value has at most 100000 items",
              "value_error.list.max_items", json{{"limit_value", 100000}});
  check_error(only_error(parse_provider_registration(registration_with("runs", runs))),
              json{"body", "runs"}, "ensure this value has at most 100000 items",
              "value_error.list.max_items", json{{"limit_value", 100000}});
}

TEST_CASE("validate: a CAF heartbeat follows the same rules",
          "[validate][heartbeat][caf]") {
  heartbeat x;
  CHECK(check_heartbeat(x).empty()); // nothing given
  x.has_bots = true;
  x.bots = {{"echo", ""}};
  x.instance_id = "boot-1";
  x.load = 1;
  x.capacity = 0;
  x.has_runs = true;
  x.runs = {"r-1", "r-2"};
  CHECK(check_heartbeat(x).empty());
  x.load = -0.5; // any negative: not given
  x.capacity = -7;
  CHECK(check_heartbeat(x).empty());

  x.bots = {{"no way", ""}};
  x.instance_id = std::string(65, 'i');
  x.load = 1.5;
  x.runs = {"ok", "", std::string(129, 'r')};
  auto e = check_heartbeat(x);
  REQUIRE(e.size() == 5);
  check_error(e[0], json{"body", "bots", 0, "name"},
              "string does not match regex \"^[A-Za-z0-9_.-]{1,64}$\"",
              "value_error.str.regex", json{{"pattern", "^[A-Za-z0-9_.-]{1,64}$"}});
  check_error(e[1], json{"body", "instance_id"},
              "ensure this value has at most 64 characters",
              "value_error.any_str.max_length", max_64);
  check_error(e[2], json{"body", "load"}, "ensure this value is less than or equal to 1",
              "value_error.number.not_le", json{{"limit_value", 1}});
  check_error(e[3], json{"body", "runs", 1},
              "ensure this value has at least 1 characters",
              "value_error.any_str.min_length", min_1);
  check_error(e[4], json{"body", "runs", 2},
              "ensure this value has at most 128 characters",
              "value_error.any_str.max_length", json{{"limit_value", 128}});

  heartbeat odd;
  odd.load = std::numeric_limits<double>::quiet_NaN();
  REQUIRE(check_heartbeat(odd).size() == 1);
  CHECK(check_heartbeat(odd)[0].type == "value_error.number.not_ge");
  odd.load = std::numeric_limits<double>::infinity();
  REQUIRE(check_heartbeat(odd).size() == 1);
  CHECK(check_heartbeat(odd)[0].type == "value_error.number.not_le");
  odd = heartbeat{};
  odd.instance_id = "bad\xff";
  REQUIRE(check_heartbeat(odd).size() == 1);
  CHECK(check_heartbeat(odd)[0].type == "value_error.str.utf8");
  odd = heartbeat{};
  odd.bots.assign(257, bot_info{"b", ""});
  REQUIRE(check_heartbeat(odd).size() == 1);
  CHECK(check_heartbeat(odd)[0].type == "value_error.list.max_items");
}

// -- drain -----------------------------------------------------------------------------

TEST_CASE("validate: drain bodies", "[validate][drain]") {
  for (const char* body : {"", " \n", "{}", "null"}) {
    INFO(body);
    auto r = parse_drain_request(body);
    REQUIRE(r);
    CHECK(r.value->provider_key.empty());
    CHECK(r.value->timeout < 0); // the server's drain_timeout
    CHECK(r.value->by_operator); // the drain route is an operator's
  }
  auto r = parse_drain_request(R"({"provider_key":"k-1","timeout":30.5,"reason":"upgrade"})");
  REQUIRE(r);
  CHECK(r.value->provider_key == "k-1");
  CHECK(r.value->timeout == 30.5);
  CHECK(parse_drain_request(R"({"timeout":86400})").value->timeout == 86400);
  CHECK(parse_drain_request(R"({"timeout":0.001})").value->timeout == 0.001);
  CHECK(parse_drain_request(R"({"timeout":null,"provider_key":""})").value->timeout < 0);

  check_error(only_error(parse_drain_request(R"({"timeout":0})")), json{"body", "timeout"},
              "ensure this value is greater than 0", "value_error.number.not_gt",
              json{{"limit_value", 0}});
  check_error(only_error(parse_drain_request(R"({"timeout":-5})")), json{"body", "timeout"},
              "ensure this value is greater than 0", "value_error.number.not_gt",
              json{{"limit_value", 0}});
  check_error(only_error(parse_drain_request(R"({"timeout":86400.5})")),
              json{"body", "timeout"}, "ensure this value is less than or equal to 86400",
              "value_error.number.not_le", json{{"limit_value", 86400}});
  check_error(only_error(parse_drain_request(R"({"timeout":"30"})")),
              json{"body", "timeout"}, "value is not a valid float", "type_error.float");
  check_error(only_error(parse_drain_request(R"({"provider_key":5})")),
              json{"body", "provider_key"}, "str type expected", "type_error.str");
  check_error(only_error(parse_drain_request(
                json{{"provider_key", std::string(129, 'k')}}.dump())),
              json{"body", "provider_key"}, "ensure this value has at most 128 characters",
              "value_error.any_str.max_length", json{{"limit_value", 128}});
  check_error(only_error(parse_drain_request("[]")), json{"body"},
              "value is not a valid dict", "type_error.dict");
  auto malformed = parse_drain_request("{\"timeout\":");
  REQUIRE_FALSE(malformed);
  CHECK(malformed.error.status == 400);
}

// -- Idempotency-Key -------------------------------------------------------------------

TEST_CASE("validate: an Idempotency-Key is 1 to 128 printable ASCII characters",
          "[validate][idempotency]") {
  CHECK_FALSE(check_idempotency_key("a"));
  CHECK_FALSE(check_idempotency_key("9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"));
  CHECK_FALSE(check_idempotency_key("with space ~!@#$%^&*()"));
  CHECK_FALSE(check_idempotency_key(std::string(128, 'k')));
  const json loc{"header", "idempotency-key"};
  auto e = check_idempotency_key("");
  REQUIRE(e);
  check_error(*e, loc, "ensure this value has at least 1 characters",
              "value_error.any_str.min_length", min_1);
  e = check_idempotency_key(std::string(129, 'k'));
  REQUIRE(e);
  check_error(*e, loc, "ensure this value has at most 128 characters",
              "value_error.any_str.max_length", json{{"limit_value", 128}});
  for (std::string bad : {std::string("a\tb"), std::string("a\x7f"),
                          std::string("nul\0", 4), std::string("a\r\nb")}) {
    e = check_idempotency_key(bad);
    REQUIRE(e);
    check_error(*e, loc, "string contains control characters",
                "value_error.str.printable");
  }
  e = check_idempotency_key("caf\xc3\xa9");
  REQUIRE(e);
  check_error(*e, loc, "string contains characters other than printable ASCII",
              "value_error.str.ascii");
}

// -- lobbies and sessions --------------------------------------------------------------

TEST_CASE("validate: lobby_create", "[validate][lobby]") {
  auto r = parse_lobby_create(R"({"name":"Kitchen","private":true})");
  REQUIRE(r);
  CHECK(r.value->name == "Kitchen");
  CHECK(r.value->is_private);
  auto p = parse_lobby_create(R"({"name":"Hall","private":null})");
  REQUIRE(p);
  CHECK_FALSE(p.value->is_private);
  CHECK_FALSE(parse_lobby_create(R"({"name":"Hall"})").value->is_private);

  for (std::string bad : {"\"yes\"", "1", "0", "\"true\"", "[]"}) {
    INFO(bad);
    check_error(only_error(parse_lobby_create("{\"name\":\"x\",\"private\":" + bad + "}")),
                json{"body", "private"}, "value could not be parsed to a boolean",
                "type_error.bool");
  }
  auto both = errors_of(parse_lobby_create(R"({"private":"no"})"), 2);
  check_error(both[0], json{"body", "name"}, "field required",
              "value_error.missing");
  check_error(both[1], json{"body", "private"},
              "value could not be parsed to a boolean", "type_error.bool");
  check_error(only_error(parse_lobby_create(R"({"name":""})")), json{"body", "name"},
              "ensure this value has at least 1 characters",
              "value_error.any_str.min_length", min_1);
  check_error(only_error(parse_lobby_create(json{{"name", std::string(65, 'l')}}.dump())),
              json{"body", "name"}, "ensure this value has at most 64 characters",
              "value_error.any_str.max_length", max_64);
  check_error(only_error(parse_lobby_create(R"({"name":"a\u0007b"})")),
              json{"body", "name"}, "string contains control characters",
              "value_error.str.printable");
}

TEST_CASE("validate: session_create", "[validate][lobby]") {
  auto r = parse_session_create(R"({"nick":"alice","extra":1})");
  REQUIRE(r);
  CHECK(r.value->nick == "alice");
  check_error(only_error(parse_session_create("{}")), json{"body", "nick"},
              "field required", "value_error.missing");
  check_error(only_error(parse_session_create(R"({"nick":""})")), json{"body", "nick"},
              "ensure this value has at least 1 characters",
              "value_error.any_str.min_length", min_1);
  check_error(only_error(parse_session_create(R"({"nick":12})")), json{"body", "nick"},
              "str type expected", "type_error.str");
  check_error(only_error(parse_session_create(R"({"nick":"a\u0085"})")),
              json{"body", "nick"}, "string contains control characters",
              "value_error.str.printable");
}

TEST_CASE("validate: chat_line from a lobby page", "[validate][lobby]") {
  auto r = parse_chat_line(R"({"type":"chat","nick":"alice","text":"hi\nthere"})");
  REQUIRE(r);
  CHECK(r.value->nick == "alice");
  CHECK(r.value->text == "hi\nthere");
  auto wrong_type = only_error(parse_chat_line(R"({"type":"shout","nick":"a","text":"x"})"));
  check_error(wrong_type, json{"body", "type"}, "unexpected value; permitted: 'chat'",
              "value_error.const",
              json{{"given", "shout"}, {"permitted", json::array({"chat"})}});
  check_error(only_error(parse_chat_line(R"({"type":"chat","nick":"a","text":""})")),
              json{"body", "text"}, "ensure this value has at least 1 characters",
              "value_error.any_str.min_length", min_1);
  auto longest = json{{"type", "chat"}, {"nick", "a"}, {"text", std::string(2000, 'x')}};
  CHECK(parse_chat_line(longest.dump()));
  longest["text"] = std::string(2001, 'x');
  CHECK(only_error(parse_chat_line(longest.dump())).type == "value_error.any_str.max_length");
  auto none = parse_chat_line("{}");
  REQUIRE_FALSE(none);
  CHECK(none.error.errors.size() == 3);
  CHECK(parse_chat_line("{oops").error.status == 400);
  CHECK(parse_chat_line(std::string(100, '[') + std::string(100, ']')).error.code
        == "json_too_deep");
}

// -- joins and leaves --------------------------------------------------------------------

TEST_CASE("validate: join_request", "[validate][join]") {
  auto r = parse_join_request(R"({"lobby_id":"l-1","nick":"bot","provider_id":"p-1"})");
  REQUIRE(r);
  CHECK(r.value->lobby_id == "l-1");
  CHECK(r.value->nick == "bot");
  CHECK(r.value->provider_id == "p-1");

  // The seed's own example: an empty provider_id means "not given".
  auto seed = parse_join_request(R"({"lobby_id":"l","nick":"test-bot","provider_id":""})");
  REQUIRE(seed);
  CHECK(seed.value->provider_id.empty());
  auto defaults = parse_join_request(R"({"lobby_id":"l","nick":null,"provider_id":null})");
  REQUIRE(defaults);
  CHECK(defaults.value->nick.empty());
  CHECK(defaults.value->provider_id.empty());
  CHECK(parse_join_request(R"({"lobby_id":"l","nick":""})"));

  check_error(only_error(parse_join_request(R"({"nick":"x"})")), json{"body", "lobby_id"},
              "field required", "value_error.missing");
  check_error(only_error(parse_join_request(R"({"lobby_id":""})")),
              json{"body", "lobby_id"}, "ensure this value has at least 1 characters",
              "value_error.any_str.min_length", min_1);
  check_error(only_error(parse_join_request(R"({"lobby_id":null})")),
              json{"body", "lobby_id"}, "none is not an allowed value",
              "type_error.none.not_allowed");
  check_error(only_error(parse_join_request(json{{"lobby_id", std::string(129, 'l')}}.dump())),
              json{"body", "lobby_id"}, "ensure this value has at most 128 characters",
              "value_error.any_str.max_length", json{{"limit_value", 128}});
  check_error(only_error(parse_join_request(
                json{{"lobby_id", "l"}, {"nick", std::string(65, 'n')}}.dump())),
              json{"body", "nick"}, "ensure this value has at most 64 characters",
              "value_error.any_str.max_length", max_64);

  auto all =
    errors_of(parse_join_request(R"({"lobby_id":5,"nick":"a\nb","provider_id":[]})"), 3);
  check_error(all[0], json{"body", "lobby_id"}, "str type expected",
              "type_error.str");
  check_error(all[1], json{"body", "nick"},
              "string contains control characters", "value_error.str.printable");
  check_error(all[2], json{"body", "provider_id"}, "str type expected",
              "type_error.str");
}

TEST_CASE("validate: leave_request", "[validate][join]") {
  auto r = parse_leave_request(R"({"session_id":"s-1","lobby_id":"l-1"})");
  REQUIRE(r);
  CHECK(r.value->session_id == "s-1");
  CHECK(r.value->lobby_id == "l-1");
  auto no_lobby = parse_leave_request(R"({"session_id":"s-1","lobby_id":""})");
  REQUIRE(no_lobby);
  CHECK(no_lobby.value->lobby_id.empty());
  check_error(only_error(parse_leave_request(R"({"lobby_id":"l"})")),
              json{"body", "session_id"}, "field required", "value_error.missing");
  check_error(only_error(parse_leave_request(R"({"session_id":""})")),
              json{"body", "session_id"}, "ensure this value has at least 1 characters",
              "value_error.any_str.min_length", min_1);
  check_error(only_error(parse_leave_request(R"({"session_id":"s","lobby_id":1})")),
              json{"body", "lobby_id"}, "str type expected", "type_error.str");
}

// -- single values -------------------------------------------------------------------------

TEST_CASE("validate: bot names and the bot_name path parameter",
          "[validate][path]") {
  for (const auto& good :
       std::vector<std::string>{"echo", "ai_chatbot", "A.b-C_9", std::string(64, 'x')})
    CHECK(valid_bot_name(good));
  for (const auto& bad : std::vector<std::string>{
         "", "a b", std::string(65, 'x'), "caf\xc3\xa9", "a/b",
         std::string("a\0b", 3), "../etc"})
    CHECK_FALSE(valid_bot_name(bad));
  CHECK(valid_bot_name("..")); // the pattern allows dots; routes match by name

  CHECK_FALSE(check_bot_name_path("ai_chatbot"));
  const json loc{"path", "bot_name"};
  check_error(*check_bot_name_path("a b"), loc,
              "string does not match regex \"^[A-Za-z0-9_.-]{1,64}$\"",
              "value_error.str.regex", json{{"pattern", "^[A-Za-z0-9_.-]{1,64}$"}});
  check_error(*check_bot_name_path(""), loc,
              "ensure this value has at least 1 characters",
              "value_error.any_str.min_length", min_1);
  check_error(*check_bot_name_path(std::string(65, 'b')), loc,
              "ensure this value has at most 64 characters",
              "value_error.any_str.max_length", max_64);
  check_error(*check_bot_name_path("bad\xff"), loc, "string is not valid UTF-8",
              "value_error.str.utf8");

  CHECK_FALSE(check_id_path("9f1c2d3e-aaaa", "lobby_id"));
  check_error(*check_id_path(std::string(129, 'i'), "provider_id"),
              json{"path", "provider_id"},
              "ensure this value has at most 128 characters",
              "value_error.any_str.max_length", json{{"limit_value", 128}});
  check_error(*check_id_path("a\r\nb", "session_id"), json{"path", "session_id"},
              "string contains control characters", "value_error.str.printable");
}

TEST_CASE("validate: UTF-8 helpers", "[validate][utf8]") {
  CHECK(valid_utf8(""));
  CHECK(valid_utf8("plain"));
  CHECK(valid_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"));
  for (std::string bad : {"\xff", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf",
                          "\xed\xa0\x80", "\xf0\x80\x80\xaf", "\xf4\x90\x80\x80",
                          "\xf5\x80\x80\x80", "\xe2\x82", "a\xc3", "\x80",
                          "\xc3\x28"}) {
    INFO(bad);
    CHECK_FALSE(valid_utf8(bad));
    CHECK_FALSE(printable(bad));
  }
  CHECK(utf8_length("") == 0);
  CHECK(utf8_length("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80x") == 4);

  CHECK(printable("Hello, w\xc3\xb6rld \xf0\x9f\x98\x80"));
  CHECK(printable("\xc2\xa0\xc2\xa1")); // U+00A0, U+00A1: past the C1 block
  CHECK_FALSE(printable("\xc2\x9f"));   // U+009F
  CHECK_FALSE(printable("\x7f"));
  CHECK_FALSE(printable("a\nb"));
  CHECK(printable("a\nb\tc", true));
  CHECK_FALSE(printable("a\rb", true));
}

TEST_CASE("validate: mutated bodies never make a parser throw", "[validate][fuzz]") {
  const std::vector<std::string> seeds{
    R"({"name":"voicebot","base_url":"http://h:1/","description":"d\n","bots":[{"name":"echo","description":"e"}]})",
    R"({"lobby_id":"l-1","nick":"n","provider_id":"p"})",
    R"({"name":"Kitchen","private":false})",
    R"({"bots":[{"name":"a"},{"name":"b"}]})",
    R"({"load":0.5,"capacity":3,"runs":["r1",{"run_id":"r2"}],"instance_id":"i","heartbeat_interval":1.5})",
    R"({"provider_key":"k","timeout":30})"};
  std::mt19937 rng{20240611};
  const char raw_alphabet[] = "{}[]\",:\\ \x00\xff\xc3\x80nu0e-.tf\n\x7f";
  const std::string alphabet(raw_alphabet, sizeof raw_alphabet - 1);
  std::size_t ok = 0;
  std::vector<std::string> wrong; // bodies with a bad status or body
  for (int round = 0; round < 1000; ++round) {
    auto body = seeds[round % seeds.size()];
    auto edits = 1 + rng() % 4;
    for (unsigned k = 0; k < edits && !body.empty(); ++k) {
      auto pos = rng() % body.size();
      switch (rng() % 3) {
        case 0:
          body[pos] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          body.erase(pos, 1);
          break;
        default:
          body.insert(pos, 1, alphabet[rng() % alphabet.size()]);
      }
    }
    auto check = [&](const auto& r) {
      if (r) {
        ++ok;
        return;
      }
      bool status_ok = r.error.status == 400 || r.error.status == 422;
      if (!status_ok || !json::accept(render(r.error)))
        wrong.push_back(body);
    };
    try {
      check(parse_provider_registration(body));
      check(parse_heartbeat(body));
      check(parse_lobby_create(body));
      check(parse_session_create(body));
      check(parse_join_request(body));
      check(parse_leave_request(body));
      check(parse_chat_line(body));
      check(parse_drain_request(body));
    } catch (...) {
      wrong.push_back("threw: " + body);
    }
  }
  INFO((wrong.empty() ? std::string{} : wrong.front()));
  CHECK(wrong.empty());
  CHECK(ok > 0); // some mutations stay valid
}
