// The journals' records (model/journal_codec) and the hand-written and SAX
// codecs behind a fast start-up: the same text as nlohmann's, the same
// state as a replay one record at a time.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/journal_codec.hpp"
#include "model/json.hpp"
#include "model/snapshot_codec.hpp"

using nlohmann::json;
using namespace vb;

namespace {

std::string nlohmann_dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

session bot(std::string id, std::string nick) {
  session s;
  s.session_id = std::move(id);
  s.nick = std::move(nick);
  s.is_bot = true;
  s.bot_name = "echo";
  s.provider_id = "p1";
  s.run_id = "r-" + s.session_id;
  s.joined_at = 1796161949.4949524;
  return s;
}

lobby room(std::string id, std::vector<session> members = {}) {
  lobby l;
  l.id = std::move(id);
  l.name = "room " + l.id;
  l.created_at = 1700000000;
  l.sessions = std::move(members);
  return l;
}

} // namespace

TEST_CASE("a session and a provider are written as nlohmann writes them, "
          "escapes and odd bytes included", "[journal_codec]") {
  std::vector<std::string> nicks{"plain", "quote \" and \\ backslash",
                                 "tab\there", "ünïcødé ✓", "bad \xff utf-8",
                                 "del \x7f", std::string("nul \0 x", 7)};
  for (auto& nick : nicks) {
    auto s = bot("s1", nick);
    CHECK(session_json(s) == nlohmann_dump(json(s)));
    s.orphaned = true;
    s.moved_at = 1796161950.25;
    CHECK(session_json(s) == nlohmann_dump(json(s)));
    provider p;
    p.provider_id = "id";
    p.name = nick;
    p.base_url = "http://127.0.0.1:9/x";
    p.description = nick;
    p.bots = {bot_info{"echo", nick}, bot_info{"b", ""}};
    p.registered_at = 1;
    p.last_seen = 0.1 + 0.2;
    CHECK(provider_json(p) == nlohmann_dump(snapshot_json(p)));
    p.instance_id = nick;
    p.heartbeat_interval = 0.05;
    p.drain_deadline = 1796162000.5;
    p.drain_by_operator = true;
    p.status = provider_status::draining;
    p.load = 0.5; // volatile: in neither text
    p.capacity = 3;
    p.active_runs = 7;
    p.lease_expires_at = 1796162900;
    CHECK(provider_json(p) == nlohmann_dump(snapshot_json(p)));
  }
  auto s = bot("s1", "n");
  provider p;
  p.provider_id = "id";
  p.name = "n";
  for (double t : {0.0, -1.5, 1e300, 5e-324, std::numeric_limits<double>::quiet_NaN(),
                   std::numeric_limits<double>::infinity()}) {
    s.joined_at = t;
    s.moved_at = t;
    CHECK(session_json(s) == nlohmann_dump(json(s)));
    p.heartbeat_interval = t;
    p.drain_deadline = t;
    CHECK(provider_json(p) == nlohmann_dump(snapshot_json(p)));
  }
}

TEST_CASE("a snapshot keeps a provider's instance, heartbeat interval and "
          "drain, not its load, capacity, runs or lease", "[journal_codec]") {
  provider p;
  p.provider_id = "p1";
  p.name = "one";
  p.status = provider_status::draining;
  p.instance_id = "inst-\"7\"";
  p.heartbeat_interval = 2.5;
  p.drain_deadline = 1796162000.5;
  p.drain_by_operator = true;
  p.load = 0.25;
  p.capacity = 4;
  p.active_runs = 9;
  p.lease_expires_at = 1796162900;
  auto kept = [](const provider& x) {
    CHECK(x.status == provider_status::draining);
    CHECK(x.instance_id == "inst-\"7\"");
    CHECK(x.heartbeat_interval == 2.5);
    CHECK(x.drain_deadline == 1796162000.5);
    CHECK(x.drain_by_operator);
    CHECK(x.load < 0);
    CHECK(x.capacity < 0);
    CHECK(x.active_runs == 0);
    CHECK(x.lease_expires_at == 0);
  };
  std::string text = provider_json(p);
  CHECK(text.find("load") == std::string::npos);
  CHECK(text.find("capacity") == std::string::npos);
  CHECK(text.find("active_runs") == std::string::npos);
  CHECK(text.find("lease_expires_at") == std::string::npos);
  std::vector<provider> back;
  std::string why;
  REQUIRE(decode_providers(encode_provider_fragments({&text}), back, why));
  REQUIRE(back.size() == 1);
  kept(back[0]);
  REQUIRE(decode_providers(encode_providers({p}), back, why));
  REQUIRE(back.size() == 1);
  kept(back[0]);
  provider_replay pr{{}};
  REQUIRE(pr.apply(provider_put_record(text), why));
  auto replayed = pr.result();
  REQUIRE(replayed.size() == 1);
  kept(replayed[0]);

  // Not draining, nothing announced: null, and back to the defaults.
  provider plain;
  plain.provider_id = "p2";
  plain.name = "two";
  auto j = json::parse(provider_json(plain));
  CHECK(j["instance_id"].is_null());
  CHECK(j["heartbeat_interval"].is_null());
  CHECK(j["drain_deadline"].is_null());
  CHECK(j["drain_by_operator"] == false);
  auto again = j.get<provider>();
  CHECK(again.instance_id.empty());
  CHECK(again.heartbeat_interval == 0);
  CHECK(again.drain_deadline == 0);
  CHECK_FALSE(again.drain_by_operator);
}

TEST_CASE("a member's orphaned mark and move time come back through the "
          "snapshot and the journal; files without them still load",
          "[journal_codec]") {
  auto moved = bot("a", "A");
  moved.orphaned = true;
  moved.moved_at = 1796161999.75;
  std::string header = lobby_header_json(room("l1"));
  std::string member = session_json(moved);
  std::vector<lobby> back;
  std::string why;
  REQUIRE(decode_lobbies(encode_lobby_parts({lobby_parts{&header, {&member}}}, 3),
                         back, why));
  REQUIRE(back.at(0).sessions.size() == 1);
  CHECK(back[0].sessions[0].orphaned);
  CHECK(back[0].sessions[0].moved_at == 1796161999.75);
  CHECK(json(back[0].sessions[0]) == json(moved));

  // A join record of a member already there replaces it (a move).
  lobby_replay r{{room("l1", {bot("a", "A")})}};
  REQUIRE(r.apply(join_record("l1", member), why));
  auto replayed = r.result();
  REQUIRE(replayed.at(0).sessions.size() == 1);
  CHECK(json(replayed[0].sessions[0]) == json(moved));

  // Written before the fleet fields: they take their defaults.
  const std::string old_file
    = R"({"format":"voicebot-server/lobbies","lobbies":[{"created_at":1.0,"id":"l1",)"
      R"("members":1,"name":"n","private":false,"sessions":[{"bot_name":"echo",)"
      R"("is_bot":true,"joined_at":2.0,"nick":"e","provider_id":"p1","run_id":"r1",)"
      R"("session_id":"s1"}]}],"version":1})";
  REQUIRE(decode_lobbies(old_file, back, why));
  REQUIRE(back.at(0).sessions.size() == 1);
  CHECK_FALSE(back[0].sessions[0].orphaned);
  CHECK(back[0].sessions[0].moved_at == 0);
  lobby_replay old{{room("l1")}};
  REQUIRE(old.apply(R"({"op":"join","lobby_id":"l1","session":{"session_id":"s2",)"
                    R"("moved_at":null,"is_bot":true}})",
                    why));
  CHECK(old.result().at(0).sessions.at(0).moved_at == 0);

  // Of the wrong type: refused with the field's name.
  CHECK_FALSE(decode_lobbies(
    R"({"format":"voicebot-server/lobbies","version":1,"lobbies":[{"id":"l","name":"n",)"
    R"("sessions":[{"session_id":"s","orphaned":"yes"}]}]})",
    back, why));
  CHECK_THAT(why, Catch::Contains("field 'orphaned' must be a boolean"));
  CHECK_FALSE(decode_lobbies(
    R"({"format":"voicebot-server/lobbies","version":1,"lobbies":[{"id":"l","name":"n",)"
    R"("sessions":[{"session_id":"s","moved_at":"later"}]}]})",
    back, why));
  CHECK_THAT(why, Catch::Contains("field 'moved_at' must be a number"));
}

TEST_CASE("that a lobby had people is in its header in the data files only: "
          "a lobby record again sets it and keeps the members; files without "
          "it load as false", "[journal_codec][grace]") {
  auto had = room("l1");
  had.had_people = true;
  CHECK(lobby_header_json(room("l1")).find("had_people") == std::string::npos);
  CHECK(lobby_header_json(had)
        == R"({"created_at":1700000000.0,"had_people":true,"id":"l1",)"
           R"("name":"room l1","private":false})");
  // Not in what clients see.
  CHECK_FALSE(lobby_summary(had).contains("had_people"));
  CHECK_FALSE(json(had).contains("had_people"));
  // Through a snapshot.
  std::string header = lobby_header_json(had);
  std::string member = session_json(bot("a", "A"));
  std::vector<lobby> back;
  std::string why;
  REQUIRE(decode_lobbies(encode_lobby_parts({lobby_parts{&header, {&member}}}, 3),
                         back, why));
  CHECK(back.at(0).had_people);
  // Through the journal: the header again, the members kept.
  lobby_replay r{{room("l1", {bot("a", "A")})}};
  REQUIRE(r.apply(lobby_record(had), why));
  auto replayed = r.result();
  CHECK(replayed.at(0).had_people);
  CHECK(replayed[0].sessions.size() == 1);
  // An older file: false.
  REQUIRE(decode_lobbies(encode_lobbies({room("l1", {bot("a", "A")})}), back,
                         why));
  CHECK_FALSE(back.at(0).had_people);
  // Of the wrong type: refused with the field's name.
  CHECK_FALSE(decode_lobbies(
    R"({"format":"voicebot-server/lobbies","version":1,"lobbies":[{"id":"l","name":"n",)"
    R"("had_people":1,"sessions":[]}]})",
    back, why));
  CHECK_THAT(why, Catch::Contains("field 'had_people' must be a boolean"));
}

TEST_CASE("records replay onto a snapshot's lobbies, and replaying a record "
          "again changes nothing", "[journal_codec]") {
  std::vector<lobby> base{room("l1", {bot("a", "A"), bot("b", "B")})};
  std::vector<std::string> records{
    lobby_record(room("l2")),
    join_record("l2", session_json(bot("c", "C"))),
    leave_record("l1", "a"),
    join_record("l1", session_json(bot("d", "D"))),
  };
  auto replay_all = [&](bool twice) {
    lobby_replay r{base};
    std::string why;
    for (int round = 0; round < (twice ? 2 : 1); ++round)
      for (auto& rec : records)
        REQUIRE(r.apply(rec, why));
    return r.result();
  };
  auto once = replay_all(false);
  REQUIRE(once.size() == 2);
  REQUIRE(once[0].sessions.size() == 2);
  CHECK(once[0].sessions[0].session_id == "b");
  CHECK(once[0].sessions[1].session_id == "d");
  CHECK(once[1].name == "room l2");
  REQUIRE(once[1].sessions.size() == 1);
  CHECK(json(once[1].sessions[0]) == json(bot("c", "C")));
  CHECK(json(replay_all(true)) == json(once));
}

TEST_CASE("records parsed ahead on two threads replay as one at a time",
          "[journal_codec]") {
  std::vector<lobby> base{room("l1")};
  std::vector<std::string> records;
  for (int i = 0; i < 5000; ++i) {
    records.push_back(join_record("l1", session_json(bot("s" + std::to_string(i),
                                                         "n" + std::to_string(i)))));
    if (i % 3 == 0)
      records.push_back(leave_record("l1", "s" + std::to_string(i / 2)));
  }
  records.push_back(R"({"op":"join","lobby_id":"nope","session":{"session_id":"x"}})");
  records.push_back(R"({"op":"future"})");
  records.push_back("not json");
  lobby_replay plain{base}, ahead{base};
  std::vector<const std::string*> ptrs;
  for (auto& r : records)
    ptrs.push_back(&r);
  ahead.preparse(ptrs);
  size_t plain_ok = 0, ahead_ok = 0;
  for (auto& r : records) {
    std::string w1, w2;
    bool a = plain.apply(r, w1);
    bool b = ahead.apply(r, w2);
    CHECK(a == b);
    CHECK(w1 == w2);
    plain_ok += a;
    ahead_ok += b;
  }
  CHECK(plain_ok == records.size() - 3);
  CHECK(json(plain.result()) == json(ahead.result()));
}

TEST_CASE("a record that does not decode is refused with a reason and "
          "changes nothing", "[journal_codec]") {
  lobby_replay r{{room("l1", {bot("a", "A")})}};
  std::string why;
  CHECK_FALSE(r.apply(R"({"op":"join","lobby_id":"l1","session":{"nick":"x"}})", why));
  CHECK_THAT(why, Catch::Contains("session id"));
  CHECK_FALSE(r.apply(R"({"op":"join","lobby_id":"l1","session":{"session_id":5}})", why));
  CHECK_THAT(why, Catch::Contains("field 'session_id' must be a string"));
  CHECK_FALSE(r.apply(R"({"lobby_id":"l1"})", why));
  CHECK_THAT(why, Catch::Contains("no \"op\""));
  CHECK_FALSE(r.apply(std::string(1000, '['), why));
  auto back = r.result();
  REQUIRE(back.at(0).sessions.size() == 1);
  CHECK(back[0].sessions[0].session_id == "a");

  provider_replay pr{{}};
  provider p;
  p.provider_id = "p1";
  p.name = "one";
  REQUIRE(pr.apply(provider_put_record(provider_json(p)), why));
  REQUIRE(pr.apply(provider_seen_record({{"p1", 42.0}, {"ghost", 1.0}}), why));
  CHECK_FALSE(pr.apply(R"({"op":"put"})", why));
  auto ps = pr.result();
  REQUIRE(ps.size() == 1);
  CHECK(ps[0].last_seen == 42.0);
  provider_replay gone{{p}};
  REQUIRE(gone.apply(provider_del_record("p1"), why));
  REQUIRE(gone.apply(provider_del_record("p1"), why));
  CHECK(gone.result().empty());
}

TEST_CASE("a snapshot names the last journal record it holds; older files "
          "hold none", "[journal_codec]") {
  std::string header = lobby_header_json(room("l1"));
  std::string member = session_json(bot("a", "A"));
  auto text = encode_lobby_parts({lobby_parts{&header, {&member}}}, 77);
  std::vector<lobby> back;
  std::string why;
  uint64_t seq = 0;
  REQUIRE(decode_lobbies(text, back, why, &seq));
  CHECK(seq == 77);
  REQUIRE(back.at(0).sessions.size() == 1);
  CHECK(json(back[0].sessions[0]) == json(bot("a", "A")));
  REQUIRE(decode_lobbies(encode_lobbies({room("l1")}), back, why, &seq));
  CHECK(seq == 0);
  std::vector<provider> ps;
  REQUIRE(decode_providers(encode_provider_fragments({}, 9), ps, why, &seq));
  CHECK(seq == 9);
  CHECK_FALSE(decode_lobbies(R"({"format":"voicebot-server/lobbies","version":1,"journal_seq":-1,"lobbies":[]})",
                             back, why, &seq));
  CHECK_THAT(why, Catch::Contains("journal_seq"));
}

TEST_CASE("journal records keep their bytes: a record around rendered JSON "
          "has \"op\" first, a record of plain values its keys sorted",
          "[journal_codec]") {
  CHECK(provider_put_record(R"({"provider_id":"p1"})")
        == R"({"op":"put","provider":{"provider_id":"p1"}})");
  CHECK(provider_del_record("p1") == R"({"op":"del","provider_id":"p1"})");
  CHECK(provider_seen_record({{"p2", 2.5}, {"p1", 1.0}})
        == R"({"last_seen":{"p1":1.0,"p2":2.5},"op":"seen"})");
  CHECK(lobby_record(room("l1"))
        == R"({"op":"lobby","lobby":{"created_at":1700000000.0,"id":"l1",)"
           R"("name":"room l1","private":false}})");
  CHECK(join_record("l \"1\" \xff", R"({"session_id":"s1"})")
        == "{\"op\":\"join\",\"lobby_id\":\"l \\\"1\\\" \xef\xbf\xbd\","
           "\"session\":{\"session_id\":\"s1\"}}");
  CHECK(leave_record("l1", "s1")
        == R"({"lobby_id":"l1","op":"leave","session_id":"s1"})");
}
