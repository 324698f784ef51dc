// The idempotency keys' durable form (model/idempotency_codec): the records
// of idempotency.journal, the snapshot idempotency.json, their replay, and
// the fingerprint of a join. The journal's own framing (torn tails,
// corruption, rotation) is tested in test_journal.cpp.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/idempotency_codec.hpp"
#include "storage/journal.hpp"
#include "tests/temp_dir.hpp"

using nlohmann::json;
using namespace vb;

namespace {

idempotency_entry entry(std::string key, std::string session_id,
                        double expires_at = 1800000000.25) {
  idempotency_entry e;
  e.key = std::move(key);
  e.fingerprint = join_fingerprint("echo", join_request{"lobby-1", "Echo", ""});
  e.lobby_id = "lobby-1";
  e.answer.session_id = std::move(session_id);
  e.answer.nick = "Echo";
  e.answer.is_bot = true;
  e.answer.bot_name = "echo";
  e.answer.provider_id = "p1";
  e.answer.run_id = "run-" + e.answer.session_id;
  e.answer.joined_at = 1796161949.4949524;
  e.expires_at = expires_at;
  return e;
}

bool same(const idempotency_entry& a, const idempotency_entry& b) {
  return a.key == b.key && a.fingerprint == b.fingerprint
         && a.lobby_id == b.lobby_id && a.expires_at == b.expires_at
         && a.answer.session_id == b.answer.session_id
         && a.answer.nick == b.answer.nick && a.answer.is_bot == b.answer.is_bot
         && a.answer.bot_name == b.answer.bot_name
         && a.answer.provider_id == b.answer.provider_id
         && a.answer.run_id == b.answer.run_id
         && a.answer.joined_at == b.answer.joined_at;
}

std::vector<std::string> keys_of(const std::vector<idempotency_entry>& es) {
  std::vector<std::string> out;
  for (auto& e : es)
    out.push_back(e.key);
  return out;
}

} // namespace

TEST_CASE("a join's fingerprint tells apart every field of the request, "
          "whatever the fields hold", "[idempotency_codec]") {
  auto fp = [](std::string bot, std::string lobby, std::string nick,
               std::string provider) {
    return join_fingerprint(bot, join_request{lobby, nick, provider});
  };
  auto base = fp("echo", "l1", "Echo", "");
  CHECK(base == fp("echo", "l1", "Echo", ""));
  CHECK(base != fp("greeter", "l1", "Echo", ""));
  CHECK(base != fp("echo", "l2", "Echo", ""));
  CHECK(base != fp("echo", "l1", "Echo2", ""));
  CHECK(base != fp("echo", "l1", "", ""));
  CHECK(base != fp("echo", "l1", "Echo", "p1"));
  // No separator can make two requests look alike.
  CHECK(fp("a", "b\",\"c", "", "") != fp("a", "b", "c", ""));
  CHECK(json::parse(base) == json::array({"echo", "l1", "Echo", ""}));
}

TEST_CASE("an idempotency snapshot round-trips, with its journal_seq, odd "
          "characters included", "[idempotency_codec]") {
  std::vector<idempotency_entry> es{entry("k1", "s1"),
                                    entry("quote \" \\ and ünïcødé ✓", "s2"),
                                    entry("k3", "s3", 1.5)};
  auto text = encode_idempotency(es, 42);
  CHECK(json::parse(text)["format"] == idempotency_format);
  std::vector<idempotency_entry> out;
  std::string why;
  uint64_t seq = 0;
  REQUIRE(decode_idempotency(text, out, why, &seq));
  CHECK(seq == 42);
  REQUIRE(out.size() == es.size());
  for (size_t i = 0; i < es.size(); ++i)
    CHECK(same(out[i], es[i]));
  // No journal_seq: 0; no keys: an empty snapshot.
  REQUIRE(decode_idempotency(encode_idempotency({}), out, why, &seq));
  CHECK(seq == 0);
  CHECK(out.empty());
}

TEST_CASE("a bad idempotency snapshot is refused whole and changes nothing",
          "[idempotency_codec]") {
  auto good = json::parse(encode_idempotency({entry("k1", "s1")}, 7));
  std::vector<std::string> bad{
    "",
    "not json",
    "[]",
    std::string(100, '[') + std::string(100, ']'),
    json{{"format", "voicebot-server/lobbies"}, {"version", 1}, {"keys", json::array()}}.dump(),
    json{{"format", idempotency_format}, {"version", 2}, {"keys", json::array()}}.dump(),
    json{{"format", idempotency_format}, {"version", 1}}.dump(),
  };
  auto with = [&](auto change) {
    auto j = good;
    change(j);
    return j.dump();
  };
  bad.push_back(with([](json& j) { j["journal_seq"] = -1; }));
  bad.push_back(with([](json& j) { j["keys"][0].erase("key"); }));
  bad.push_back(with([](json& j) { j["keys"][0]["key"] = 5; }));
  bad.push_back(with([](json& j) { j["keys"][0].erase("expires_at"); }));
  bad.push_back(with([](json& j) { j["keys"][0].erase("session"); }));
  bad.push_back(with([](json& j) { j["keys"][0]["session"]["session_id"] = ""; }));
  bad.push_back(with([](json& j) { j["keys"][0]["session"]["is_bot"] = "yes"; }));
  bad.push_back(with([](json& j) { j["keys"].push_back(j["keys"][0]); }));
  for (auto& text : bad) {
    std::vector<idempotency_entry> out{entry("before", "s0")};
    std::string why;
    CHECK_FALSE(decode_idempotency(text, out, why));
    CHECK_FALSE(why.empty());
    REQUIRE(out.size() == 1);
    CHECK(out[0].key == "before");
  }
}

TEST_CASE("put and del records replay onto a snapshot: a put replaces, a "
          "del of nothing is nothing, and a replay twice is the same",
          "[idempotency_codec]") {
  auto a = entry("a", "s1");
  auto b = entry("b", "s2");
  auto b2 = entry("b", "s9", 1900000000);
  auto c = entry("c", "s3");
  std::vector<std::string> records{
    idempotency_put_record(idempotency_entry_json(b)),
    idempotency_put_record(idempotency_entry_json(c)),
    idempotency_del_record("a"),
    idempotency_del_record("nothing"),
    idempotency_put_record(idempotency_entry_json(b2)),
  };
  CHECK(json::parse(records[0]) == json{{"op", "put"},
                                        {"entry", json::parse(idempotency_entry_json(b))}});
  CHECK(json::parse(records[2]) == json{{"op", "del"}, {"key", "a"}});
  for (int times = 1; times <= 2; ++times) {
    idempotency_replay replay{{a}};
    std::string why;
    for (int t = 0; t < times; ++t)
      for (auto& r : records)
        CHECK(replay.apply(r, why));
    auto out = replay.result();
    CHECK(keys_of(out) == std::vector<std::string>{"b", "c"});
    CHECK(same(out[0], b2));
    CHECK(same(out[1], c));
  }
}

TEST_CASE("a record that does not decode is refused and changes nothing",
          "[idempotency_codec]") {
  idempotency_replay replay{{entry("a", "s1")}};
  for (std::string bad : {R"({"op":"put"})", R"({"op":"put","entry":{"key":"x"}})",
                          R"({"op":"put","entry":{"key":"","expires_at":1,"session":{"session_id":"s"}}})",
                          R"({"op":"del","key":7})", R"({"op":"nope"})",
                          R"({"key":"a"})", "[]", "not json"}) {
    std::string why;
    CHECK_FALSE(replay.apply(bad, why));
    CHECK_FALSE(why.empty());
  }
  CHECK(keys_of(replay.result()) == std::vector<std::string>{"a"});
}

TEST_CASE("keys written to an idempotency journal come back from it: a put "
          "then a del of another key, replayed after the snapshot's seq",
          "[idempotency_codec]") {
  test::temp_dir dir;
  auto a = entry("a", "s1");
  auto b = entry("b", "s2");
  std::string snapshot;
  {
    storage::journal_file j{dir.path, "idempotency"};
    storage::journal_replay none;
    std::string error;
    REQUIRE(j.open(0, none, error));
    auto ra = idempotency_put_record(idempotency_entry_json(a));
    REQUIRE(j.append({ra}, error));
    // The snapshot holds record 1; the records after it follow.
    snapshot = encode_idempotency({a}, 1);
    auto rb = idempotency_put_record(idempotency_entry_json(b));
    auto da = idempotency_del_record("a");
    REQUIRE(j.append({rb, da}, error));
  }
  std::vector<idempotency_entry> base;
  std::string why;
  uint64_t seq = 0;
  REQUIRE(decode_idempotency(snapshot, base, why, &seq));
  storage::journal_file j{dir.path, "idempotency"};
  storage::journal_replay replayed;
  std::string error;
  REQUIRE(j.open(seq, replayed, error));
  REQUIRE(replayed.records.size() == 2);
  idempotency_replay replay{std::move(base)};
  for (auto& r : replayed.records)
    CHECK(replay.apply(r.payload, why));
  auto out = replay.result();
  REQUIRE(out.size() == 1);
  CHECK(same(out[0], b));
}

TEST_CASE("idempotency records keep their bytes: a put has \"op\" first and "
          "the entry as given, a del its keys sorted", "[idempotency_codec]") {
  CHECK(idempotency_put_record(R"({"key":"k"})")
        == R"({"op":"put","entry":{"key":"k"}})");
  CHECK(idempotency_del_record("k \"1\" \xff")
        == "{\"key\":\"k \\\"1\\\" \xef\xbf\xbd\",\"op\":\"del\"}");
}
