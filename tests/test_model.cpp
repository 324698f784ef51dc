// model/: enum names, JSON of the value types, and the snapshot codec.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/call_once.hpp"
#include "model/json.hpp"
#include "model/snapshot_codec.hpp"
#include "model/types.hpp"
#include "tests/model_samples.hpp"

using nlohmann::json;
using namespace vb;

namespace {

provider sample_provider() {
  auto p = test::make_provider(
    "9f1c2d3e-aaaa-bbbb-cccc-0123456789ab", "voicebot-gpu-1", transport::http,
    {{"ai_chatbot", "Chats with you"}, {"whisper", "Transcribes"}},
    1757443211.7239835, 1757443511.25, provider_status::suspect);
  p.base_url = "http://10.0.0.7:8788";
  p.description = "GPU box\nsecond line";
  return p;
}

provider caf_provider() {
  return test::make_provider(
    "caf-1", "local host", transport::caf,
    {{"echo", "Repeats lobby chat"}, {"greeter", "Says hello"}}, 100, 200.5,
    provider_status::draining);
}

lobby sample_lobby() {
  lobby l;
  l.id = "lobby-1";
  l.name = "Kitchen \xc3\xa9t\xc3\xa9"; // "Kitchen été"
  l.is_private = true;
  l.created_at = 1757000000.5;
  l.sessions = {
    test::person_member("s-1", "alice", 1757000001),
    test::bot_member("s-2", "echo-bot", "echo", "caf-1", "run-42",
                     1757000002.75)};
  return l;
}

/// Value equality through the JSON form (the types have no operator==).
template <class T>
json as_json(const T& x) {
  json j = x;
  return j;
}

template <class T>
json as_json(const std::vector<T>& xs) {
  json j = json::array();
  for (const auto& x : xs)
    j.push_back(as_json(x));
  return j;
}

/// Pointers to each of `xs` (what the fragment encoders take).
template <class T>
std::vector<const T*> pointers_to(const std::vector<T>& xs) {
  std::vector<const T*> out;
  for (const auto& x : xs)
    out.push_back(&x);
  return out;
}

/// decode_providers (decode_lobbies) fails, without throwing, with a reason
/// containing `fragment`, and leaves `out` as it was.
template <class T>
void rejects(const std::string& text, const std::string& fragment, T kept) {
  std::vector<T> out{kept};
  std::string why;
  bool ok = true;
  if constexpr (std::is_same_v<T, provider>)
    CHECK_NOTHROW(ok = decode_providers(text, out, why));
  else
    CHECK_NOTHROW(ok = decode_lobbies(text, out, why));
  CHECK_FALSE(ok);
  CHECK_THAT(why, Catch::Contains(fragment));
  CHECK(out.size() == 1);
}

void rejects_providers(const std::string& text, const std::string& fragment) {
  rejects(text, fragment, caf_provider());
}

void rejects_lobbies(const std::string& text, const std::string& fragment) {
  rejects(text, fragment, sample_lobby());
}

/// A file written by the original Python server (json.dump(..., indent=2) of
/// pydantic model dumps keyed by provider_id).
const char* legacy_file = R"({
  "0b6f2a52-62c4-4b8e-9d71-0d7f1c3b5e10": {
    "provider_id": "0b6f2a52-62c4-4b8e-9d71-0d7f1c3b5e10",
    "base_url": "http://voicebot:8788",
    "name": "voicebot",
    "description": "AI voicebot provider",
    "registered_at": 1757443211.7239835,
    "last_seen": 1757443811.0016415,
    "bots": [
      {
        "name": "ai_chatbot",
        "description": "An AI chatbot"
      },
      {
        "name": "whisper",
        "description": ""
      }
    ]
  },
  "5d9e3c1a-0000-4d2b-8f00-aa11bb22cc33": {
    "provider_id": "5d9e3c1a-0000-4d2b-8f00-aa11bb22cc33",
    "base_url": "https://bots.example.com/voicebot",
    "name": "second",
    "description": "",
    "registered_at": 1757440000,
    "last_seen": 1757440000.5,
    "bots": []
  }
}
)";

} // namespace

// -- enums -------------------------------------------------------------------------

TEST_CASE("model: transport names round trip", "[model][types]") {
  for (auto x : {transport::http, transport::caf}) {
    transport back = x == transport::http ? transport::caf : transport::http;
    CHECK(from_string(to_string(x), back));
    CHECK(back == x);
  }
  CHECK(std::string{to_string(transport::http)} == "http");
  CHECK(std::string{to_string(transport::caf)} == "caf");
  transport t = transport::caf;
  CHECK_FALSE(from_string("HTTP", t));
  CHECK_FALSE(from_string("", t));
  CHECK(t == transport::caf);
}

TEST_CASE("model: provider status names round trip", "[model][types]") {
  const std::vector<std::pair<provider_status, std::string>> names{
    {provider_status::online, "online"},
    {provider_status::suspect, "suspect"},
    {provider_status::unreachable, "unreachable"},
    {provider_status::draining, "draining"}};
  for (const auto& [x, name] : names) {
    CHECK(to_string(x) == name);
    provider_status back = provider_status::online;
    CHECK(from_string(name, back));
    CHECK(back == x);
  }
  provider_status s = provider_status::draining;
  CHECK_FALSE(from_string("offline", s));
  CHECK(s == provider_status::draining);
}

// -- JSON ----------------------------------------------------------------------------

TEST_CASE("model: provider JSON has the SPEC's fields and round trips",
          "[model][json]") {
  auto p = sample_provider();
  json j = p;
  CHECK(j["provider_id"] == p.provider_id);
  CHECK(j["name"] == "voicebot-gpu-1");
  CHECK(j["base_url"] == "http://10.0.0.7:8788");
  CHECK(j["description"] == "GPU box\nsecond line");
  CHECK(j["transport"] == "http");
  CHECK(j["bots"] == json::parse(R"([{"name":"ai_chatbot","description":"Chats with you"},
                                      {"name":"whisper","description":"Transcribes"}])"));
  CHECK(j["registered_at"].get<double>() == 1757443211.7239835);
  CHECK(j["last_seen"].get<double>() == 1757443511.25);
  CHECK(j["status"] == "suspect");
  // The fleet's fields (SPEC §7): null when none was announced.
  CHECK(j["instance_id"].is_null());
  CHECK(j["heartbeat_interval"].is_null());
  CHECK(j["load"].is_null());
  CHECK(j["capacity"].is_null());
  CHECK(j["active_runs"] == 0);
  CHECK(j["lease_expires_at"] == 0);
  CHECK(j.size() == 15);

  auto back = j.get<provider>();
  CHECK(as_json(back) == j);
  CHECK(back.via == transport::http);
  CHECK(back.status == provider_status::suspect);
  REQUIRE(back.bots.size() == 2);
  CHECK(back.bots[1].name == "whisper");

  // Through text and back, as a snapshot does.
  auto again = json::parse(j.dump()).get<provider>();
  CHECK(as_json(again) == j);

  json c = caf_provider();
  CHECK(c["transport"] == "caf");
  CHECK(c["base_url"] == "");
  CHECK(c["status"] == "draining");
  CHECK(as_json(c.get<provider>()) == c);
}

TEST_CASE("model: a provider's announced fleet fields are numbers, and read "
          "back", "[model][json]") {
  auto p = sample_provider();
  p.instance_id = "boot-7f3a";
  p.heartbeat_interval = 0.05;
  p.load = 0; // announced: 0 is a load, not "none"
  p.capacity = 0;
  p.active_runs = 3;
  p.lease_expires_at = 1757444411.25;
  json j = p;
  CHECK(j["instance_id"] == "boot-7f3a");
  CHECK(j["heartbeat_interval"].get<double>() == 0.05);
  CHECK(j["load"].get<double>() == 0);
  CHECK(j["capacity"] == 0);
  CHECK(j["capacity"].is_number_integer());
  CHECK(j["active_runs"] == 3);
  CHECK(j["lease_expires_at"].get<double>() == 1757444411.25);
  // What only a snapshot holds is not shown.
  CHECK_FALSE(j.contains("drain_deadline"));
  CHECK_FALSE(j.contains("drain_by_operator"));

  auto back = json::parse(j.dump()).get<provider>();
  CHECK(as_json(back) == j);
  CHECK(back.capacity == 0);
  CHECK(back.load == 0);
  CHECK(back.active_runs == 3);

  p.load = 0.75;
  p.capacity = 12;
  j = p;
  CHECK(j["load"].get<double>() == 0.75);
  CHECK(j["capacity"] == 12);
}

TEST_CASE("model: a session's orphaned mark and move time", "[model][json]") {
  session s;
  s.session_id = "s-1";
  s.is_bot = true;
  json j = s;
  CHECK(j["orphaned"] == false);
  CHECK(j["moved_at"].is_null());
  s.orphaned = true;
  s.moved_at = 1757000003.5;
  j = s;
  CHECK(j["orphaned"] == true);
  CHECK(j["moved_at"].get<double>() == 1757000003.5);
  auto back = json::parse(j.dump()).get<session>();
  CHECK(back.orphaned);
  CHECK(back.moved_at == 1757000003.5);
}

TEST_CASE("model: lobby JSON with sessions round trips", "[model][json]") {
  auto l = sample_lobby();
  json j = l;
  CHECK(j["id"] == "lobby-1");
  CHECK(j["name"] == "Kitchen \xc3\xa9t\xc3\xa9");
  CHECK(j["private"] == true);
  CHECK(j["created_at"].get<double>() == 1757000000.5);
  CHECK(j["members"] == 2);
  REQUIRE(j["sessions"].size() == 2);
  const auto& bot = j["sessions"][1];
  CHECK(bot == json::parse(R"({"session_id":"s-2","nick":"echo-bot","is_bot":true,
    "bot_name":"echo","provider_id":"caf-1","run_id":"run-42","joined_at":1757000002.75,
    "orphaned":false,"moved_at":null})"));
  const auto& person = j["sessions"][0];
  CHECK(person["is_bot"] == false);
  CHECK(person["bot_name"] == "");
  CHECK(person["run_id"] == "");

  auto back = json::parse(j.dump()).get<lobby>();
  CHECK(as_json(back) == j);
  CHECK(back.is_private);
  REQUIRE(back.sessions.size() == 2);
  CHECK(back.sessions[1].is_bot);
  CHECK(back.sessions[1].run_id == "run-42");
}

TEST_CASE("model: lobby summary has no sessions", "[model][json]") {
  auto s = lobby_summary(sample_lobby());
  CHECK(s == json::parse(R"({"id":"lobby-1","name":"Kitchen \u00e9t\u00e9",
    "private":true,"created_at":1757000000.5,"members":2})"));
  CHECK_FALSE(s.contains("sessions"));
  lobby empty;
  empty.id = "x";
  CHECK(lobby_summary(empty)["members"] == 0);
}

TEST_CASE("model: from_json takes defaults for missing or null fields",
          "[model][json]") {
  auto p = json::parse(R"({"provider_id":"p1","name":"n","base_url":null,
                           "future_field":[1,2]})")
             .get<provider>();
  CHECK(p.provider_id == "p1");
  CHECK(p.name == "n");
  CHECK(p.base_url.empty());
  CHECK(p.description.empty());
  CHECK(p.via == transport::http);
  CHECK(p.bots.empty());
  CHECK(p.registered_at == 0);
  CHECK(p.last_seen == 0);
  CHECK(p.status == provider_status::online);
  CHECK(p.instance_id.empty());
  CHECK(p.heartbeat_interval == 0);
  CHECK(p.load < 0);
  CHECK(p.capacity < 0);
  CHECK(p.active_runs == 0);
  CHECK(p.lease_expires_at == 0);
  CHECK(p.drain_deadline == 0);
  CHECK_FALSE(p.drain_by_operator);

  // null is "not announced" too, as to_json writes it.
  auto nulls = json::parse(R"({"provider_id":"p1","name":"n","instance_id":null,
    "heartbeat_interval":null,"load":null,"capacity":null,"drain_deadline":null})")
                 .get<provider>();
  CHECK(nulls.instance_id.empty());
  CHECK(nulls.heartbeat_interval == 0);
  CHECK(nulls.load < 0);
  CHECK(nulls.capacity < 0);
  CHECK(nulls.drain_deadline == 0);

  auto b = json::parse(R"({"name":"echo"})").get<bot_info>();
  CHECK(b.name == "echo");
  CHECK(b.description.empty());

  auto s = json::parse(R"({"session_id":"s"})").get<session>();
  CHECK_FALSE(s.is_bot);
  CHECK(s.joined_at == 0);
  CHECK_FALSE(s.orphaned);
  CHECK(s.moved_at == 0);
  CHECK(json::parse(R"({"moved_at":null,"orphaned":null})").get<session>().moved_at == 0);

  auto l = json::parse(R"({"id":"l","name":"n","members":99})").get<lobby>();
  CHECK_FALSE(l.is_private);
  CHECK(l.sessions.empty());

  // An integer time is a time too.
  CHECK(json::parse(R"({"last_seen":17})").get<provider>().last_seen == 17);
}

TEST_CASE("model: from_json names the field of the wrong type",
          "[model][json]") {
  auto fails_with = [](const char* text, const char* fragment) {
    try {
      (void)json::parse(text).get<provider>();
      FAIL("no exception for " << text);
    } catch (const json::type_error& e) {
      CHECK_THAT(error_message(e), Catch::Contains(fragment));
      CHECK_THAT(std::string{e.what()}, Catch::StartsWith("[json.exception"));
    }
  };
  fails_with(R"({"name":5})", "field 'name' must be a string, not number");
  fails_with(R"({"last_seen":"yesterday"})", "field 'last_seen' must be a number");
  fails_with(R"({"transport":"smoke"})", "field 'transport' has an unknown value");
  fails_with(R"({"status":1})", "field 'status' must be a string");
  fails_with(R"({"bots":{}})", "field 'bots' must be an array");
  fails_with(R"({"bots":[{"name":"a"},{"name":[]}]})",
             "bots[1]: field 'name' must be a string, not array");
  fails_with(R"({"bots":[7]})", "bots[0]: a bot must be an object");
  fails_with(R"([])", "a provider must be an object");
  fails_with(R"({"capacity":2.5})", "field 'capacity' must be an integer, not number");
  fails_with(R"({"active_runs":-1})", "field 'active_runs' must be a non-negative integer");
  fails_with(R"({"instance_id":7})", "field 'instance_id' must be a string");
  fails_with(R"({"heartbeat_interval":"1s"})", "field 'heartbeat_interval' must be a number");
  fails_with(R"({"drain_by_operator":1})", "field 'drain_by_operator' must be a boolean");
  CHECK_THROWS_AS(json::parse(R"({"orphaned":"no"})").get<session>(), json::type_error);
  CHECK_THROWS_AS(json::parse(R"({"private":"yes"})").get<lobby>(),
                  json::type_error);
  CHECK_THROWS_AS(json::parse(R"({"sessions":[{"is_bot":1}]})").get<lobby>(),
                  json::type_error);
}

// -- snapshot codec: providers -------------------------------------------------------

TEST_CASE("model: providers snapshot round trips", "[model][snapshot]") {
  std::vector<provider> ps{sample_provider(), caf_provider()};
  auto text = encode_providers(ps);
  CHECK(text.find('\n') == std::string::npos); // compact
  auto j = json::parse(text);
  CHECK(j["format"] == "voicebot-server/bot_providers");
  CHECK(j["version"] == 1);
  CHECK(j["providers"].size() == 2);

  std::vector<provider> back;
  std::string why;
  REQUIRE(decode_providers(text, back, why));
  CHECK(why.empty());
  CHECK(as_json(back) == as_json(ps));
  CHECK(back[1].via == transport::caf);

  // No providers at all is a valid snapshot too.
  REQUIRE(decode_providers(encode_providers({}), back, why));
  CHECK(back.empty());
}

TEST_CASE("model: a legacy Python bot_providers.json loads",
          "[model][snapshot][legacy]") {
  std::vector<provider> ps;
  std::string why;
  REQUIRE(decode_providers(legacy_file, ps, why));
  REQUIRE(ps.size() == 2);
  const auto& a = ps[0];
  CHECK(a.provider_id == "0b6f2a52-62c4-4b8e-9d71-0d7f1c3b5e10");
  CHECK(a.name == "voicebot");
  CHECK(a.base_url == "http://voicebot:8788");
  CHECK(a.description == "AI voicebot provider");
  CHECK(a.via == transport::http);
  CHECK(a.status == provider_status::online);
  CHECK(a.registered_at == Approx(1757443211.7239835));
  CHECK(a.last_seen == Approx(1757443811.0016415));
  REQUIRE(a.bots.size() == 2);
  CHECK(a.bots[0].name == "ai_chatbot");
  CHECK(a.bots[0].description == "An AI chatbot");
  const auto& b = ps[1];
  CHECK(b.provider_id == "5d9e3c1a-0000-4d2b-8f00-aa11bb22cc33");
  CHECK(b.base_url == "https://bots.example.com/voicebot");
  CHECK(b.bots.empty());
  CHECK(b.registered_at == 1757440000);
  // The original protocol announces nothing of the fleet.
  CHECK(a.instance_id.empty());
  CHECK(a.heartbeat_interval == 0);
  CHECK(a.drain_deadline == 0);

  // What we write back is our own format, and reads the same.
  std::vector<provider> again;
  REQUIRE(decode_providers(encode_providers(ps), again, why));
  CHECK(as_json(again) == as_json(ps));
}

TEST_CASE("model: legacy files: empty object, missing fields, key wins",
          "[model][snapshot][legacy]") {
  std::vector<provider> ps{caf_provider()};
  std::string why;
  REQUIRE(decode_providers("{}", ps, why));
  CHECK(ps.empty());
  REQUIRE(decode_providers(" {}\n", ps, why));
  CHECK(ps.empty());

  // No provider_id inside the value, no bots, no base_url: tolerated.
  REQUIRE(decode_providers(R"({"p-1":{"name":"old","registered_at":1,"last_seen":2}})",
                           ps, why));
  REQUIRE(ps.size() == 1);
  CHECK(ps[0].provider_id == "p-1");
  CHECK(ps[0].name == "old");
  CHECK(ps[0].base_url.empty());
  CHECK(ps[0].bots.empty());

  // A value whose provider_id disagrees with its key: the key wins.
  REQUIRE(decode_providers(R"({"key-id":{"provider_id":"other","name":"n"}})",
                           ps, why));
  CHECK(ps[0].provider_id == "key-id");
}

TEST_CASE("model: corrupt providers snapshots are rejected with a reason",
          "[model][snapshot][corrupt]") {
  auto good = encode_providers({sample_provider(), caf_provider()});
  rejects_providers("", "empty file");
  rejects_providers(" \n\t", "empty file");
  rejects_providers(good.substr(0, good.size() / 2), "malformed JSON");
  rejects_providers(good.substr(0, good.size() - 1), "malformed JSON");
  rejects_providers("{", "malformed JSON");
  rejects_providers("not json", "malformed JSON");
  rejects_providers(good + "garbage", "malformed JSON");
  rejects_providers(std::string("\0\0\0\0", 4), "malformed JSON");
  rejects_providers("{\"p\":{\"name\":\"\xff\xfe\"}}", "malformed JSON");
  rejects_providers("[]", "top level is array");
  rejects_providers("42", "top level is number");
  rejects_providers("null", "top level is null");
  rejects_providers("\"text\"", "top level is string");
  rejects_providers(std::string(100000, '['), "nested deeper than 64");
  rejects_providers(std::string(65, '[') + std::string(65, ']'),
                    "nested deeper than 64");
  std::string deep_object;
  for (int i = 0; i < 70; ++i)
    deep_object += "{\"a\":";
  rejects_providers(deep_object + "1" + std::string(70, '}'),
                    "nested deeper than 64");

  // Header problems.
  rejects_providers(encode_lobbies({}), "format is \"voicebot-server/lobbies\"");
  rejects_providers(R"({"format":"voicebot-server/bot_providers","providers":[]})",
                    "version");
  rejects_providers(R"({"format":"voicebot-server/bot_providers","version":2,"providers":[]})",
                    "unsupported version 2");
  rejects_providers(R"({"format":"voicebot-server/bot_providers","version":1})",
                    "no \"providers\" array");
  rejects_providers(R"({"format":"voicebot-server/bot_providers","version":1,"providers":{}})",
                    "no \"providers\" array");

  // Entries.
  const std::string head
    = R"({"format":"voicebot-server/bot_providers","version":1,"providers":)";
  rejects_providers(head + R"([{"name":"n"}]})", "providers[0]: no provider_id");
  rejects_providers(head + R"([{"provider_id":"","name":"n"}]})", "no provider_id");
  rejects_providers(head + R"([{"provider_id":"p"}]})", "providers[0]: no name");
  rejects_providers(head + R"([{"provider_id":"p","name":"n"},{"provider_id":"p","name":"m"}]})",
                    "providers[1]: duplicate provider_id \"p\"");
  rejects_providers(head + R"([{"provider_id":"p","name":"n","last_seen":"now"}]})",
                    "providers[0]: field 'last_seen' must be a number");
  rejects_providers(head + R"([{"provider_id":"p","name":"n","bots":"echo"}]})",
                    "field 'bots' must be an array");
  rejects_providers(head + R"([{"provider_id":"p","name":"n","bots":[{"description":"x"}]}]})",
                    "bots[0] has no name");
  rejects_providers(head + R"([{"provider_id":"p","name":"n","transport":"pigeon"}]})",
                    "unknown value \"pigeon\"");
  rejects_providers(head + R"([3]})", "providers[0]: a provider must be an object");

  // Legacy entries.
  rejects_providers(R"({"p":"not an object"})", "provider \"p\": a provider must be an object");
  rejects_providers(R"({"p":{"provider_id":"p"}})", "provider \"p\": no name");
  rejects_providers(R"({"":{"name":"n"}})", "no provider_id");
  rejects_providers(R"({"p":{"name":"n","registered_at":"2024-01-01"}})",
                    "field 'registered_at' must be a number");
}

// -- snapshot codec: lobbies -----------------------------------------------------------

TEST_CASE("model: lobbies snapshot round trips with sessions",
          "[model][snapshot]") {
  lobby other;
  other.id = "lobby-2";
  other.name = "empty room";
  other.created_at = 5;
  std::vector<lobby> ls{sample_lobby(), other};
  auto text = encode_lobbies(ls);
  auto j = json::parse(text);
  CHECK(j["format"] == "voicebot-server/lobbies");
  CHECK(j["version"] == 1);
  CHECK(j["lobbies"][0]["sessions"].size() == 2);

  std::vector<lobby> back;
  std::string why;
  REQUIRE(decode_lobbies(text, back, why));
  CHECK(as_json(back) == as_json(ls));
  CHECK(back[0].sessions[1].is_bot);
  CHECK(back[0].sessions[1].provider_id == "caf-1");

  REQUIRE(decode_lobbies(encode_lobbies({}), back, why));
  CHECK(back.empty());
}

TEST_CASE("model: corrupt lobbies snapshots are rejected with a reason",
          "[model][snapshot][corrupt]") {
  auto good = encode_lobbies({sample_lobby()});
  rejects_lobbies("", "empty file");
  rejects_lobbies(good.substr(0, good.size() - 3), "malformed JSON");
  rejects_lobbies("[]", "top level is array");
  rejects_lobbies("{}", "no \"format\" field");
  rejects_lobbies(encode_providers({}), "format is \"voicebot-server/bot_providers\"");
  rejects_lobbies(R"({"format":"voicebot-server/lobbies","lobbies":[]})",
                  "no integer \"version\" field");
  rejects_lobbies(R"({"format":"voicebot-server/lobbies","version":2,"lobbies":[]})",
                  "unsupported version 2 (this server reads version 1)");
  rejects_lobbies(std::string(100000, '{'), "nested deeper than 64");
  const std::string head = R"({"format":"voicebot-server/lobbies","version":1,"lobbies":)";
  rejects_lobbies(head + R"(null})", "no \"lobbies\" array");
  rejects_lobbies(head + R"([{"name":"n"}]})", "lobbies[0]: no id");
  rejects_lobbies(head + R"([{"id":"l"}]})", "lobbies[0]: no name");
  rejects_lobbies(head + R"([{"id":"l","name":"n"},{"id":"l","name":"n"}]})",
                  "lobbies[1]: duplicate id \"l\"");
  rejects_lobbies(head + R"([{"id":"l","name":"n","private":"no"}]})",
                  "field 'private' must be a boolean");
  rejects_lobbies(head + R"([{"id":"l","name":"n","sessions":[{"nick":"x"}]}]})",
                  "sessions[0] has no session_id");
  rejects_lobbies(head + R"([{"id":"l","name":"n","sessions":[{"session_id":"s","is_bot":"yes"}]}]})",
                  "sessions[0]: field 'is_bot' must be a boolean");
}

TEST_CASE("model: a lobbies snapshot from rendered members is the same text",
          "[model][snapshot]") {
  std::vector<lobby> ls(2);
  ls[0].id = "l1";
  ls[0].name = "room \"one\"";
  ls[0].created_at = 1764300000.25;
  ls[1].id = "l2";
  ls[1].name = "empty";
  ls[1].is_private = true;
  for (int i = 0; i < 3; ++i)
    ls[0].sessions.push_back(test::bot_member(
      "s" + std::to_string(i), "bot " + std::to_string(i), "echo", "p",
      "r" + std::to_string(i), 1764300001.5 + i));
  std::vector<std::string> rendered;
  for (auto& s : ls[0].sessions)
    rendered.push_back(session_json(s));
  std::vector<lobby_fragments> frags(2);
  frags[0].header = &ls[0];
  frags[0].sessions = pointers_to(rendered);
  frags[1].header = &ls[1];
  auto text = encode_lobby_fragments(frags);
  CHECK(text == encode_lobbies(ls));
  std::vector<lobby> back;
  std::string why;
  REQUIRE(decode_lobbies(text, back, why));
  CHECK(back.at(0).sessions.size() == 3);
  CHECK(back.at(0).sessions.at(2).run_id == "r2");
}

TEST_CASE("model: a providers snapshot from rendered providers is the same "
          "text", "[model][snapshot]") {
  std::vector<provider> ps(3);
  for (size_t i = 0; i < ps.size(); ++i) {
    ps[i].provider_id = "id-" + std::to_string(i);
    ps[i].name = "provider \"" + std::to_string(i) + "\"";
    ps[i].base_url = "http://127.0.0.1:900" + std::to_string(i);
    ps[i].bots = {bot_info{"echo", "repeats"}};
    ps[i].registered_at = 1764300000.5 + i;
    ps[i].last_seen = 1764300100.25 + i;
  }
  ps[2].via = transport::caf;
  ps[2].base_url.clear();
  std::vector<std::string> rendered;
  for (auto& p : ps)
    rendered.push_back(provider_json(p));
  auto parts = pointers_to(rendered);
  CHECK(encode_provider_fragments(parts) == encode_providers(ps));
  CHECK(encode_provider_fragments({}) == encode_providers({}));

  // With the fleet's fields too, durable and volatile.
  ps[0].instance_id = "inst-0";
  ps[0].heartbeat_interval = 30;
  ps[1].status = provider_status::draining;
  ps[1].drain_deadline = 1764300400.5;
  ps[1].drain_by_operator = true;
  ps[2].load = 0.5;
  ps[2].capacity = 2;
  ps[2].active_runs = 1;
  ps[2].lease_expires_at = 1764301000;
  for (size_t i = 0; i < ps.size(); ++i)
    rendered[i] = provider_json(ps[i]);
  CHECK(encode_provider_fragments(parts) == encode_providers(ps));
}

TEST_CASE("model: a providers snapshot written before the fleet fields "
          "loads with their defaults", "[model][snapshot]") {
  const char* old_file
    = R"({"format":"voicebot-server/bot_providers","providers":[{"base_url":"",)"
      R"("bots":[{"description":"","name":"echo"}],"description":"","last_seen":2.0,)"
      R"("name":"n","provider_id":"p1","registered_at":1.0,"status":"unreachable",)"
      R"("transport":"caf"}],"version":1})";
  std::vector<provider> ps;
  std::string why;
  REQUIRE(decode_providers(old_file, ps, why));
  REQUIRE(ps.size() == 1);
  CHECK(ps[0].status == provider_status::unreachable);
  CHECK(ps[0].instance_id.empty());
  CHECK(ps[0].heartbeat_interval == 0);
  CHECK(ps[0].drain_deadline == 0);
  CHECK_FALSE(ps[0].drain_by_operator);
  CHECK(ps[0].load < 0);
  CHECK(ps[0].capacity < 0);
}

namespace {

std::vector<std::string> threw_log;

int dropped_value() {
  return -1;
}

void record_threw(const char* what) {
  threw_log.emplace_back(what ? what : "(unknown)");
}

} // namespace

TEST_CASE("call_once: called at most once, with the dropped value when "
          "dropped unanswered, and a throwing callback goes no further",
          "[model]") {
  std::vector<int> got;
  auto keep = [&](int v) { got.push_back(v); };
  {
    call_once<int> c(keep, dropped_value, record_threw);
    CHECK(static_cast<bool>(c));
    c(7);
    CHECK_FALSE(static_cast<bool>(c));
    c(8);
  }
  CHECK(got == std::vector<int>{7});
  got.clear();
  {
    call_once<int> c(keep, dropped_value, record_threw);
    // Moved along a chain of handlers: only the last holder answers.
    call_once<int> moved(std::move(c));
    CHECK_FALSE(static_cast<bool>(c));
  }
  CHECK(got == std::vector<int>{-1});
  threw_log.clear();
  {
    call_once<int> c([](int) { throw std::runtime_error("boom"); },
                     dropped_value, record_threw);
    c(1);
    call_once<int> d([](int) { throw 3; }, dropped_value, record_threw);
  }
  CHECK(threw_log == std::vector<std::string>{"boom", "(unknown)"});
}

TEST_CASE("a session's token hash is in the data files' JSON and comes back "
          "from a snapshot, never in its API JSON", "[model][voice]") {
  session s;
  s.session_id = "s1";
  s.nick = "alice";
  s.joined_at = 1764300000.5;
  s.token_hash = "sha256:00ff";
  auto text = session_json(s);
  CHECK(text.find("\"token_hash\":\"sha256:00ff\"") != std::string::npos);
  CHECK(json(s).dump().find("token_hash") == std::string::npos);
  CHECK(json(s).dump().find("sha256") == std::string::npos);
  lobby l;
  l.id = "11111111-2222-4333-8444-555555555555";
  l.name = "room";
  l.created_at = 1764300000;
  std::vector<lobby_fragments> frags(1);
  frags[0].header = &l;
  std::vector<std::string> rendered{text};
  frags[0].sessions = {&rendered[0]};
  std::vector<lobby> back;
  std::string why;
  REQUIRE(decode_lobbies(encode_lobby_fragments(frags), back, why));
  REQUIRE(back.at(0).sessions.size() == 1);
  CHECK(back[0].sessions[0].token_hash == "sha256:00ff");
  // A member from before tokens has none, and its JSON is as it was.
  s.token_hash.clear();
  CHECK(session_json(s).find("token_hash") == std::string::npos);
}
