// The etcd client against a fake JSON gateway on 127.0.0.1 (plain POSIX
// sockets, one std::thread per connection) that replays the answers of
// Debian's etcd-server 3.4.23 recorded in the design (cluster-etcd.md §6)
// and checks what the client sent; then the error shapes (code 14, a
// streamed error, compaction, a cut stream, a refused endpoint, failing
// keepalives); then, when `etcd` is installed, a real single member.
// Waits are on futures and condition variables with a bound.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "etcd/etcd_client.hpp"
#include "etcd_member.hpp"
#include "fake_etcd_gateway.hpp"
#include "loopback.hpp"

using namespace std::chrono_literals;
using json = nlohmann::json;
using namespace vb::etcd;

namespace {

// The recorded answers (§6.2, §6.3, §6.6), by path.
const std::string member_key = "/vb/lobbies/L1/bots/echo/Echo";

void recorded(int fd, const http_request& r, int) {
  auto j = json::parse(r.body, nullptr, false);
  std::string out;
  if (r.target == "/v3/kv/put") {
    out = answer(200, "{" + H2 + "}");
  } else if (r.target == "/v3/kv/range") {
    if (j.contains("range_end"))
      out = answer(200, "{" + header(5) + R"(,"kvs":[{"key":"L3ZiL3Byb3ZpZGVycy9wMQ==","create_revision":"3","mod_revision":"3","version":"1","value":"eyJuYW1lIjoieCJ9","lease":"4111120375154390539"},{"key":"L3ZiL3Byb3ZpZGVycy9wMg==","create_revision":"4","mod_revision":"4","version":"1","value":"eQ==","lease":"4111120375154390539"}],"count":"2"})");
    else
      out = answer(200, "{" + H2 + R"(,"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"})");
  } else if (r.target == "/v3/kv/deleterange") {
    out = answer(200, "{" + header(8) + R"(,"deleted":"1","prev_kvs":[{"key":"L3ZiL2xvYmJpZXMvTDEvYm90cy9lY2hvL0VjaG8=","create_revision":"6","mod_revision":"7","version":"2","value":"eyJzZXNzaW9uX2lkIjoiczEiLCJ2IjoyfQ=="}]})");
  } else if (r.target == "/v3/kv/txn") {
    if (j["compare"][0]["target"] == "CREATE")
      out = answer(200, "{" + header(25) + R"(,"succeeded":true,"responses":[{"response_put":{"header":{"revision":"25"}}}]})");
    else
      out = answer(200, "{" + header(26) + R"(,"responses":[{"response_range":{"header":{"revision":"26"},"kvs":[{"key":"L3ZiL2xvYmJpZXMvTDEvYm90cy9lY2hvL0VjaG8=","create_revision":"25","mod_revision":"26","version":"2","value":"eyJzdGF0ZSI6ImpvaW5lZCIsInNlc3Npb25faWQiOiJzLTEiLCJydW5faWQiOiJyLTkifQ=="}],"count":"1"}}]})");
  } else if (r.target == "/v3/lease/grant") {
    out = answer(200, "{" + H2 + R"(,"ID":"4111120375154390539","TTL":"5"})");
  } else if (r.target == "/v3/lease/keepalive") {
    if (j["ID"] == "12345")
      out = chunked_answer(200, R"({"result":{)" + H2 + R"(,"ID":"12345"}})");
    else
      out = chunked_answer(200, R"({"result":{)" + H2 + R"(,"ID":"4111120375154390539","TTL":"5"}})");
  } else if (r.target == "/v3/lease/timetolive") {
    out = answer(200, "{" + H2 + R"(,"ID":"4111120375154390539","TTL":"4","grantedTTL":"5","keys":["L3ZiL3Byb3ZpZGVycy9wMQ==","L3ZiL3Byb3ZpZGVycy9wMg=="]})");
  } else if (r.target == "/v3/lease/revoke") {
    out = chunked_answer(404, R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})");
  } else {
    out = answer(404, "404 page not found");
  }
  send_all(fd, out);
}

const std::string code14 = R"({"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14})";

} // namespace

// -- helpers ----------------------------------------------------------------------

TEST_CASE("base64 and prefix ends are etcd's", "[etcd]") {
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("/vb/providers/p1") == "L3ZiL3Byb3ZpZGVycy9wMQ==");
  CHECK(base64_encode("y") == "eQ==");
  std::string out;
  CHECK(base64_decode("eyJuYW1lIjoieCJ9", out));
  CHECK(out == R"({"name":"x"})");
  CHECK_FALSE(base64_decode("a!==", out));
  CHECK(prefix_end("/vb/") == "/vb0");
  CHECK(prefix_end(std::string("a\xff", 2)) == "b");
  CHECK(prefix_end("") == std::string(1, '\0'));
  CHECK(split_endpoints("http://a:1, http://b:2,") ==
        std::vector<std::string>{"http://a:1", "http://b:2"});
}

// -- recorded answers ---------------------------------------------------------------

TEST_CASE("put, range and delete send base64 JSON and read etcd 3.4's answers",
          "[etcd]") {
  fake_gateway gw(recorded);
  etcd_client c(options_for({gw.url()}));

  auto p = await<put_result>([&](auto done) {
    c.put({"foo", "bar", 4111120375154390539, false}, 2s, done);
  });
  REQUIRE_FALSE(p.error);
  CHECK(p.revision == 2);
  auto put_req = body_of(gw.requests("/v3/kv/put").at(0));
  CHECK(put_req["key"] == "Zm9v");
  CHECK(put_req["value"] == "YmFy");
  CHECK(put_req["lease"] == "4111120375154390539");

  auto one = await<range_result>([&](auto done) {
    range_request r;
    r.key = "foo";
    c.range(r, 2s, done);
  });
  REQUIRE_FALSE(one.error);
  CHECK(one.revision == 2);
  CHECK(one.count == 1);
  REQUIRE(one.kvs.size() == 1);
  CHECK(one.kvs[0].key == "foo");
  CHECK(one.kvs[0].value == "bar");
  CHECK(one.kvs[0].mod_revision == 2);
  CHECK(one.kvs[0].version == 1);

  auto many = await<range_result>([&](auto done) {
    range_request r;
    r.key = "/vb/providers/";
    r.prefix = true;
    r.revision = 5;
    r.limit = 10;
    c.range(r, 2s, done);
  });
  REQUIRE_FALSE(many.error);
  REQUIRE(many.kvs.size() == 2);
  CHECK(many.kvs[0].key == "/vb/providers/p1");
  CHECK(many.kvs[0].value == R"({"name":"x"})");
  CHECK(many.kvs[0].lease == 4111120375154390539);
  CHECK(many.kvs[1].value == "y");
  auto range_req = body_of(gw.requests("/v3/kv/range").at(1));
  CHECK(range_req["key"] == base64_encode("/vb/providers/"));
  CHECK(range_req["range_end"] == base64_encode("/vb/providers0"));
  CHECK(range_req["revision"] == "5");
  CHECK(range_req["limit"] == "10");

  auto d = await<delete_result>([&](auto done) {
    c.delete_range({member_key, "", false, true}, 2s, done);
  });
  REQUIRE_FALSE(d.error);
  CHECK(d.revision == 8);
  CHECK(d.deleted == 1);
  REQUIRE(d.prev_kvs.size() == 1);
  CHECK(d.prev_kvs[0].value == R"({"session_id":"s1","v":2})");
  CHECK(body_of(gw.requests("/v3/kv/deleterange").at(0))["prev_kv"] == true);
  // Every request is a POST to /v3/...
  for (auto& r : gw.requests())
    CHECK(r.method == "POST");
}

TEST_CASE("a txn sends compares and op lists and reads succeeded true and false",
          "[etcd]") {
  fake_gateway gw(recorded);
  etcd_client c(options_for({gw.url()}));

  txn_request reserve;
  reserve.compares.push_back(
    {member_key, compare_target::create, compare_result::equal, "", 0});
  reserve.success.push_back(txn_op::make(
    put_request{member_key, R"({"state":"pending"})", 8492559862660706855, false}));
  reserve.failure.push_back(txn_op::make(key_range(member_key)));
  auto ok = await<txn_result>([&](auto done) { c.txn(reserve, 2s, done); });
  REQUIRE_FALSE(ok.error);
  CHECK(ok.succeeded);
  CHECK(ok.revision == 25);
  REQUIRE(ok.responses.size() == 1);
  CHECK(ok.responses[0].op == txn_op::kind::put);
  CHECK(ok.responses[0].put.revision == 25);

  auto sent = body_of(gw.requests("/v3/kv/txn").at(0));
  CHECK(sent["compare"][0] == json{{"key", base64_encode(member_key)},
                                   {"target", "CREATE"},
                                   {"result", "EQUAL"},
                                   {"create_revision", "0"}});
  CHECK(sent["success"][0]["request_put"]["key"] == base64_encode(member_key));
  CHECK(sent["success"][0]["request_put"]["lease"] == "8492559862660706855");
  CHECK(sent["failure"][0]["request_range"]["key"] == base64_encode(member_key));

  txn_request commit;
  commit.compares.push_back(
    {member_key, compare_target::mod, compare_result::equal, "", 25});
  commit.compares.push_back(
    {member_key, compare_target::lease, compare_result::equal, "", 8492559862660706855});
  commit.compares.push_back(
    {member_key, compare_target::value, compare_result::not_equal, "x", 0});
  commit.compares.push_back(
    {member_key, compare_target::version, compare_result::greater, "", 1});
  commit.compares.push_back(
    {member_key, compare_target::create, compare_result::less, "", 30});
  commit.success.push_back(txn_op::make(put_request{member_key, "joined"}));
  commit.success.push_back(txn_op::make(delete_request{"/vb/x/", "", true}));
  commit.failure.push_back(txn_op::make(key_range(member_key)));
  auto no = await<txn_result>([&](auto done) { c.txn(commit, 2s, done); });
  REQUIRE_FALSE(no.error);
  CHECK_FALSE(no.succeeded); // no "succeeded" field
  CHECK(no.revision == 26);
  REQUIRE(no.responses.size() == 1);
  CHECK(no.responses[0].op == txn_op::kind::range);
  REQUIRE(no.responses[0].range.kvs.size() == 1);
  CHECK(no.responses[0].range.kvs[0].value
        == R"({"state":"joined","session_id":"s-1","run_id":"r-9"})");
  CHECK(no.responses[0].range.kvs[0].create_revision == 25);

  auto sent2 = body_of(gw.requests("/v3/kv/txn").at(1));
  CHECK(sent2["compare"][0]["target"] == "MOD");
  CHECK(sent2["compare"][0]["mod_revision"] == "25");
  CHECK(sent2["compare"][1]["target"] == "LEASE");
  CHECK(sent2["compare"][1]["lease"] == "8492559862660706855");
  CHECK(sent2["compare"][2]["target"] == "VALUE");
  CHECK(sent2["compare"][2]["result"] == "NOT_EQUAL");
  CHECK(sent2["compare"][2]["value"] == "eA==");
  CHECK(sent2["compare"][3]["result"] == "GREATER");
  CHECK(sent2["compare"][3]["version"] == "1");
  CHECK(sent2["compare"][4]["result"] == "LESS");
  CHECK(sent2["success"][1]["request_delete_range"]["range_end"]
        == base64_encode("/vb/x0"));
}

TEST_CASE("lease grant, keepalive, timetolive and revoke read the recorded answers",
          "[etcd]") {
  fake_gateway gw(recorded);
  etcd_client c(options_for({gw.url()}));

  auto g = await<lease_result>([&](auto done) { c.lease_grant(5, 2s, done); });
  REQUIRE_FALSE(g.error);
  CHECK(g.id == 4111120375154390539);
  CHECK(g.ttl == 5);
  CHECK(body_of(gw.requests("/v3/lease/grant").at(0)) == json{{"TTL", 5}});

  auto k = await<lease_result>(
    [&](auto done) { c.lease_keepalive(g.id, 2s, done); });
  REQUIRE_FALSE(k.error);
  CHECK(k.id == g.id);
  CHECK(k.ttl == 5);
  CHECK(body_of(gw.requests("/v3/lease/keepalive").at(0))
        == json{{"ID", "4111120375154390539"}});

  auto gone = await<lease_result>(
    [&](auto done) { c.lease_keepalive(12345, 2s, done); });
  REQUIRE_FALSE(gone.error);
  CHECK(gone.ttl == 0); // no TTL field: the lease is unknown or expired

  auto t = await<lease_ttl_result>(
    [&](auto done) { c.lease_time_to_live(g.id, true, 2s, done); });
  REQUIRE_FALSE(t.error);
  CHECK(t.ttl == 4);
  CHECK(t.granted_ttl == 5);
  CHECK(t.keys == std::vector<std::string>{"/vb/providers/p1", "/vb/providers/p2"});
  CHECK(body_of(gw.requests("/v3/lease/timetolive").at(0))["keys"] == true);

  auto r = await<lease_result>([&](auto done) { c.lease_revoke(g.id, 2s, done); });
  CHECK(r.error.kind == errc::server);
  CHECK(r.error.code == grpc::not_found);
  CHECK(r.error.http_status == 404);
  CHECK(r.error.message == "etcdserver: requested lease not found");
}

// -- error shapes -------------------------------------------------------------------

TEST_CASE("a unary call answered code 14 moves to the next endpoint", "[etcd]") {
  fake_gateway down([](int fd, const http_request&, int) {
    send_all(fd, chunked_answer(503, code14));
  });
  fake_gateway up(recorded);
  etcd_client c(options_for({down.url(), up.url()}));

  auto p = await<put_result>([&](auto done) { c.put({"foo", "bar"}, 3s, done); });
  REQUIRE_FALSE(p.error);
  CHECK(p.revision == 2);
  CHECK(down.requests("/v3/kv/put").size() == 1);
  CHECK(up.requests("/v3/kv/put").size() == 1);
  // The next call starts at the endpoint that answered.
  auto p2 = await<put_result>([&](auto done) { c.put({"foo", "bar"}, 3s, done); });
  REQUIRE_FALSE(p2.error);
  CHECK(down.requests("/v3/kv/put").size() == 1);
}

TEST_CASE("a conditional write answered code 14 is not sent again: its outcome "
          "is the caller's", "[etcd]") {
  fake_gateway down([](int fd, const http_request&, int) {
    send_all(fd, chunked_answer(503, code14));
  });
  fake_gateway up(recorded);
  etcd_client c(options_for({down.url(), up.url()}));
  txn_request reserve;
  reserve.compares.push_back(
    {member_key, compare_target::create, compare_result::equal, "", 0});
  reserve.success.push_back(
    txn_op::make(put_request{member_key, R"({"state":"pending"})", 0, false}));
  auto r = await<txn_result>([&](auto done) { c.txn(reserve, 3s, done); });
  CHECK(r.error.kind == errc::unavailable);
  CHECK(r.error.code == grpc::unavailable);
  CHECK(r.error.message.find("outcome is unknown") != std::string::npos);
  CHECK(down.requests("/v3/kv/txn").size() == 1);
  CHECK(up.requests("/v3/kv/txn").empty());
  // A read-only txn (and a write without compares) moves on as any call.
  txn_request read;
  read.compares = reserve.compares;
  read.success.push_back(txn_op::make(key_range(member_key)));
  await<txn_result>([&](auto done) { c.txn(read, 3s, done); });
  CHECK(up.requests("/v3/kv/txn").size() == 1);
}

TEST_CASE("a refused endpoint is skipped for the next one", "[etcd]") {
  fake_gateway up(recorded);
  etcd_client c(options_for({refused_url(), up.url()}));
  auto r = await<range_result>([&](auto done) {
    range_request q;
    q.key = "foo";
    c.range(q, 3s, done);
  });
  REQUIRE_FALSE(r.error);
  CHECK(r.kvs.at(0).value == "bar");
}

TEST_CASE("errors other than code 14 come back typed, without rotation", "[etcd]") {
  fake_gateway first([](int fd, const http_request&, int) {
    send_all(fd, chunked_answer(400, R"({"error":"etcdserver: mvcc: required revision has been compacted","message":"etcdserver: mvcc: required revision has been compacted","code":11})"));
  });
  fake_gateway second(recorded);
  etcd_client c(options_for({first.url(), second.url()}));
  auto r = await<range_result>([&](auto done) {
    range_request q;
    q.key = "/vb/";
    q.prefix = true;
    q.revision = 6;
    c.range(q, 3s, done);
  });
  CHECK(r.error.kind == errc::server);
  CHECK(r.error.code == grpc::out_of_range);
  CHECK(r.error.message == "etcdserver: mvcc: required revision has been compacted");
  CHECK(second.requests().empty());
}

TEST_CASE("a call whose endpoints all stay unavailable ends at its deadline",
          "[etcd]") {
  auto h = [](int fd, const http_request&, int) {
    send_all(fd, chunked_answer(503, code14));
  };
  fake_gateway a(h), b(h);
  etcd_client c(options_for({a.url(), b.url()}));
  auto t0 = steady::now();
  auto p = await<put_result>([&](auto done) { c.put({"k", "v"}, 300ms, done); });
  auto took = steady::now() - t0;
  CHECK(p.error.kind == errc::unavailable);
  CHECK(p.error.code == grpc::unavailable);
  CHECK(took >= 300ms);
  CHECK(took < 2s);
  CHECK(a.requests().size() >= 2); // rounds after the pause
  CHECK(b.requests().size() >= 2);
}

// -- watches ------------------------------------------------------------------------

namespace {

const std::string created6 = R"({"result":{)" + header(6) + R"(,"created":true}})";
const std::string event6 = R"({"result":{)" + header(6) + R"(,"events":[{"kv":{"key":"L3ZiL2xvYmJpZXMvTDEvYm90cy9lY2hvL0VjaG8=","create_revision":"6","mod_revision":"6","version":"1","value":"eyJzZXNzaW9uX2lkIjoiczEifQ=="}}]}})";
const std::string event7 = R"({"result":{)" + header(7) + R"(,"events":[{"kv":{"key":"L3ZiL2xvYmJpZXMvTDEvYm90cy9lY2hvL0VjaG8=","create_revision":"6","mod_revision":"7","version":"2","value":"eyJzZXNzaW9uX2lkIjoiczEiLCJ2IjoyfQ=="},"prev_kv":{"key":"L3ZiL2xvYmJpZXMvTDEvYm90cy9lY2hvL0VjaG8=","create_revision":"6","mod_revision":"6","version":"1","value":"eyJzZXNzaW9uX2lkIjoiczEifQ=="}}]}})";
const std::string event8 = R"({"result":{)" + header(8) + R"(,"events":[{"type":"DELETE","kv":{"key":"L3ZiL2xvYmJpZXMvTDEvYm90cy9lY2hvL0VjaG8=","mod_revision":"8"},"prev_kv":{"key":"L3ZiL2xvYmJpZXMvTDEvYm90cy9lY2hvL0VjaG8=","create_revision":"6","mod_revision":"7","version":"2","value":"eyJzZXNzaW9uX2lkIjoiczEiLCJ2IjoyfQ=="}}]}})";
const std::string progress9 = R"({"result":{)" + header(9) + R"(}})";

json create_request_of(const http_request& r) {
  return json::parse(r.body)["create_request"];
}

} // namespace

TEST_CASE("a watch delivers the recorded events however the stream is chunked",
          "[etcd]") {
  fake_gateway gw([](int fd, const http_request&, int) {
    // Messages cut across chunks: one and a half, the rest, then two.
    auto all = created6 + "\n" + event6 + "\n" + event7 + "\n";
    auto cut = created6.size() + 1 + event6.size() / 2;
    send_all(fd, chunked_head(200) + chunk(all.substr(0, cut)));
    send_all(fd, chunk(all.substr(cut)));
    send_all(fd, chunk(event8 + "\n" + progress9 + "\n"));
    fake_gateway::hold(fd);
  });
  etcd_client c(options_for({gw.url()}));
  watch_log log;
  auto id = c.watch(watch_from("/vb/", 6), log.callback());
  REQUIRE(log.wait([](auto& u) {
    return !u.empty() && u.back().what == watch_update::kind::progress;
  }));
  c.cancel_watch(id);

  auto reqs = gw.requests("/v3/watch");
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].method == "POST");
  CHECK(reqs[0].head.find("\r\ngrpc-metadata-hasleader: true\r\n")
        != std::string::npos);
  CHECK(create_request_of(reqs[0])
        == json{{"key", "L3ZiLw=="},
                {"range_end", base64_encode("/vb0")},
                {"start_revision", "6"},
                {"prev_kv", true},
                {"progress_notify", true}});

  CHECK(log.count(watch_update::kind::created) == 1);
  CHECK(log.count(watch_update::kind::broken) == 0);
  auto ev = log.events();
  REQUIRE(ev.size() == 3);
  CHECK(ev[0].type == event_type::put);
  CHECK(ev[0].kv.key == member_key);
  CHECK(ev[0].kv.value == R"({"session_id":"s1"})");
  CHECK(ev[0].kv.mod_revision == 6);
  CHECK_FALSE(ev[0].prev_kv);
  CHECK(ev[1].type == event_type::put);
  CHECK(ev[1].kv.mod_revision == 7);
  REQUIRE(ev[1].prev_kv);
  CHECK(ev[1].prev_kv->mod_revision == 6);
  CHECK(ev[2].type == event_type::del);
  CHECK(ev[2].kv.mod_revision == 8);
  REQUIRE(ev[2].prev_kv);
  CHECK(ev[2].prev_kv->value == R"({"session_id":"s1","v":2})");
  CHECK(log.last().revision == 9);
}

TEST_CASE("a streamed error mid-watch reconnects to the next endpoint from "
          "last_revision+1",
          "[etcd]") {
  auto first = [](int fd, const http_request&, int) {
    send_all(fd, chunked_head(200) + chunk(created6 + "\n") + chunk(event6 + "\n")
                   + chunk(event7 + "\n")
                   + chunk(R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}})"
                           "\n"));
    fake_gateway::hold(fd);
  };
  auto second = [](int fd, const http_request&, int) {
    send_all(fd, chunked_head(200) + chunk(created6 + "\n") + chunk(event8 + "\n"));
    fake_gateway::hold(fd);
  };
  fake_gateway a(first), b(second);
  etcd_client c(options_for({a.url(), b.url()}));
  watch_log log;
  watch_request w;
  w.key = "/vb/";
  auto id = c.watch(w, log.callback());
  REQUIRE(log.wait([&](auto& u) {
    std::size_t n = 0;
    for (auto& x : u)
      n += x.events.size();
    return n == 3;
  }));
  c.cancel_watch(id);

  REQUIRE(a.requests("/v3/watch").size() == 1);
  REQUIRE(b.requests("/v3/watch").size() == 1);
  CHECK_FALSE(create_request_of(a.requests("/v3/watch")[0]).contains("start_revision"));
  CHECK(create_request_of(b.requests("/v3/watch")[0])["start_revision"] == "8");
  CHECK(log.count(watch_update::kind::broken) == 1);
  CHECK(log.count(watch_update::kind::created) == 2);
  auto ev = log.events();
  CHECK(ev[0].kv.mod_revision == 6);
  CHECK(ev[1].kv.mod_revision == 7);
  CHECK(ev[2].kv.mod_revision == 8);
}

TEST_CASE("a compaction cancel ends the watch as compacted, not resumed",
          "[etcd]") {
  fake_gateway gw([](int fd, const http_request&, int) {
    send_all(fd, chunked_head(200)
                   + chunk(R"({"result":{)" + header(9) + R"(,"created":true}})" "\n")
                   + chunk(R"({"result":{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","raft_term":"2"},"canceled":true,"compact_revision":"7"}})"
                           "\n"));
    fake_gateway::hold(fd);
  });
  etcd_client c(options_for({gw.url()}));
  watch_log log;
  c.watch(watch_from("/vb/", 6), log.callback());
  REQUIRE(log.wait([](auto& u) {
    return !u.empty() && u.back().what == watch_update::kind::compacted;
  }));
  CHECK(log.last().compact_revision == 7);
  // No second create_request: the caller resyncs. (Bounded: far longer
  // than the 20 ms reconnect backoff.)
  CHECK_FALSE(gw.wait_requests("/v3/watch", 2, 300ms));
  CHECK(log.count(watch_update::kind::broken) == 0);
}

TEST_CASE("a chunked watch stream cut mid-line reconnects and delivers no half "
          "event",
          "[etcd]") {
  fake_gateway gw([](int fd, const http_request&, int nth) {
    if (nth == 1) {
      // The chunk says 0x200 bytes and ends after half an event: cut.
      auto half = event6.substr(0, event6.size() / 2);
      send_all(fd, chunked_head(200) + chunk(created6 + "\n"));
      char size[16];
      std::snprintf(size, sizeof size, "%x\r\n", 0x200);
      send_all(fd, size + half);
      ::shutdown(fd, SHUT_RDWR);
      return;
    }
    send_all(fd, chunked_head(200) + chunk(created6 + "\n") + chunk(event7 + "\n"));
    fake_gateway::hold(fd);
  });
  etcd_client c(options_for({gw.url(), gw.url()}));
  watch_log log;
  watch_request w;
  w.key = "/vb/";
  auto id = c.watch(w, log.callback());
  REQUIRE(log.wait([](auto& u) {
    for (auto& x : u)
      if (!x.events.empty())
        return true;
    return false;
  }));
  c.cancel_watch(id);
  auto reqs = gw.requests("/v3/watch");
  REQUIRE(reqs.size() == 2);
  // The first created said revision 6: the resume starts after it.
  CHECK(create_request_of(reqs[1])["start_revision"] == "7");
  auto ev = log.events();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kv.mod_revision == 7);
  CHECK(log.count(watch_update::kind::broken) == 1);
}

TEST_CASE("a watch resumes after the revision of a progress notification",
          "[etcd]") {
  fake_gateway gw([](int fd, const http_request&, int nth) {
    if (nth == 1) {
      // From now (revision 6), nothing happened up to 9, then the stream ends.
      send_all(fd, chunked_head(200) + chunk(created6 + "\n")
                     + chunk(progress9 + "\n") + "0\r\n\r\n");
      return;
    }
    send_all(fd, chunked_head(200) + chunk(created6 + "\n"));
    fake_gateway::hold(fd);
  });
  etcd_client c(options_for({gw.url()}));
  watch_log log;
  watch_request w;
  w.key = "/vb/";
  w.progress_notify = true;
  auto id = c.watch(w, log.callback());
  REQUIRE(gw.wait_requests("/v3/watch", 2));
  REQUIRE(log.wait([](auto& u) {
    std::size_t created = 0;
    for (auto& x : u)
      created += x.what == watch_update::kind::created;
    return created == 2;
  }));
  c.cancel_watch(id);
  auto reqs = gw.requests("/v3/watch");
  CHECK_FALSE(create_request_of(reqs[0]).contains("start_revision"));
  CHECK(create_request_of(reqs[1])["start_revision"] == "10");
  CHECK(log.count(watch_update::kind::progress) == 1);
  CHECK(log.count(watch_update::kind::broken) == 1);
}

// -- lease keeper -------------------------------------------------------------------

TEST_CASE("a lease whose keepalives keep failing is lost after the TTL, not "
          "before",
          "[etcd]") {
  std::mutex mu;
  steady::time_point last_ok{};
  auto h = [&](int fd, const http_request& r, int nth) {
    if (r.target == "/v3/lease/grant") {
      {
        std::lock_guard<std::mutex> g(mu);
        last_ok = steady::now();
      }
      send_all(fd, answer(200, "{" + H2 + R"(,"ID":"77","TTL":"1"})"));
    } else if (r.target == "/v3/lease/keepalive" && nth <= 2) {
      {
        std::lock_guard<std::mutex> g(mu);
        last_ok = steady::now();
      }
      send_all(fd, chunked_answer(200, R"({"result":{)" + H2 + R"(,"ID":"77","TTL":"1"}})"));
    } else {
      send_all(fd, chunked_answer(503, R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}})"));
    }
  };
  fake_gateway gw(h);
  etcd_client c(options_for({gw.url()}));
  std::promise<int64_t> granted, lost;
  auto [keeper, status] = c.keep_lease(
    1s, [&](int64_t id) { granted.set_value(id); },
    [&](int64_t id) { lost.set_value(id); });
  auto g = granted.get_future();
  REQUIRE(g.wait_for(wait_limit) == std::future_status::ready);
  CHECK(g.get() == 77);
  CHECK(status->id() == 77);
  auto l = lost.get_future();
  REQUIRE(l.wait_for(wait_limit) == std::future_status::ready);
  auto lost_at = steady::now();
  CHECK(l.get() == 77);
  CHECK(status->lost());
  auto since = status->since_renewal();
  REQUIRE(since);
  CHECK(*since >= 1000ms);
  std::lock_guard<std::mutex> guard(mu);
  // Renewed twice (every TTL/3), then failures retried until the TTL ran out.
  CHECK(gw.requests("/v3/lease/keepalive").size() >= 4);
  CHECK(lost_at - last_ok >= 950ms); // the request left before its answer
  CHECK(lost_at - last_ok < 1500ms);
  c.stop_keeper(keeper, false);
}

TEST_CASE("a kept lease stays and shows a recent renewal", "[etcd]") {
  fake_gateway gw([](int fd, const http_request& r, int) {
    if (r.target == "/v3/lease/grant")
      send_all(fd, answer(200, "{" + H2 + R"(,"ID":"78","TTL":"1"})"));
    else
      send_all(fd, chunked_answer(200, R"({"result":{)" + H2 + R"(,"ID":"78","TTL":"1"}})"));
  });
  etcd_client c(options_for({refused_url(), gw.url()}));
  std::atomic<bool> was_lost{false};
  auto [keeper, status] = c.keep_lease(1s, nullptr, [&](int64_t) { was_lost = true; });
  // Six renewals take about 2 s, twice the TTL.
  REQUIRE(gw.wait_requests("/v3/lease/keepalive", 6));
  CHECK_FALSE(was_lost);
  CHECK_FALSE(status->lost());
  REQUIRE(status->since_renewal());
  CHECK(*status->since_renewal() < 700ms);
  c.stop_keeper(keeper, true);
  REQUIRE(gw.wait_requests("/v3/lease/revoke", 1));
  CHECK(body_of(gw.requests("/v3/lease/revoke").at(0)) == json{{"ID", "78"}});
}

// -- a real etcd member -------------------------------------------------------------

using vb::test::etcd_member;
using vb::test::find_etcd;

TEST_CASE("against a real etcd member: put, range, txn, lease, watch",
          "[etcd][real]") {
  auto binary = find_etcd();
  if (binary.empty()) {
    WARN("SKIPPED: etcd is not installed (apt-get install etcd-server)");
    return;
  }
  etcd_member member(binary);
  etcd_client c(options_for({member.url()}));

  auto st = await_serving(c);
  CHECK(st.version == "3.4.23");
  CHECK(st.leader != 0);
  CHECK(st.leader == st.member_id);

  auto p = await<put_result>([&](auto done) { c.put({"/vb-it/a", "1"}, 5s, done); });
  REQUIRE_FALSE(p.error);
  auto r1 = p.revision;
  CHECK(r1 > 0);

  auto all = await<range_result>([&](auto done) {
    range_request q;
    q.key = "/vb-it/";
    q.prefix = true;
    c.range(q, 5s, done);
  });
  REQUIRE_FALSE(all.error);
  REQUIRE(all.kvs.size() == 1);
  CHECK(all.kvs[0].key == "/vb-it/a");
  CHECK(all.kvs[0].value == "1");
  CHECK(all.kvs[0].mod_revision == r1);

  txn_request create;
  create.compares.push_back(
    {"/vb-it/b", compare_target::create, compare_result::equal, "", 0});
  create.success.push_back(txn_op::make(put_request{"/vb-it/b", "first"}));
  create.failure.push_back(txn_op::make(key_range("/vb-it/b")));
  auto t1 = await<txn_result>([&](auto done) { c.txn(create, 5s, done); });
  REQUIRE_FALSE(t1.error);
  CHECK(t1.succeeded);
  auto t2 = await<txn_result>([&](auto done) { c.txn(create, 5s, done); });
  REQUIRE_FALSE(t2.error);
  CHECK_FALSE(t2.succeeded);
  REQUIRE(t2.responses.size() == 1);
  REQUIRE(t2.responses[0].range.kvs.size() == 1);
  CHECK(t2.responses[0].range.kvs[0].value == "first");
  CHECK(t2.responses[0].range.kvs[0].create_revision == t1.revision);

  auto g = await<lease_result>([&](auto done) { c.lease_grant(5, 5s, done); });
  REQUIRE_FALSE(g.error);
  CHECK(g.ttl == 5);
  auto pl = await<put_result>(
    [&](auto done) { c.put({"/vb-it/l", "x", g.id}, 5s, done); });
  REQUIRE_FALSE(pl.error);
  auto ttl = await<lease_ttl_result>(
    [&](auto done) { c.lease_time_to_live(g.id, true, 5s, done); });
  REQUIRE_FALSE(ttl.error);
  CHECK(ttl.granted_ttl == 5);
  CHECK(ttl.keys == std::vector<std::string>{"/vb-it/l"});
  auto k = await<lease_result>([&](auto done) { c.lease_keepalive(g.id, 5s, done); });
  REQUIRE_FALSE(k.error);
  CHECK(k.ttl == 5);
  auto rv = await<lease_result>([&](auto done) { c.lease_revoke(g.id, 5s, done); });
  REQUIRE_FALSE(rv.error);
  auto rv2 = await<lease_result>([&](auto done) { c.lease_revoke(g.id, 5s, done); });
  CHECK(rv2.error.kind == errc::server);
  CHECK(rv2.error.code == grpc::not_found);
  auto after = await<range_result>(
    [&](auto done) { c.range(key_range("/vb-it/l"), 5s, done); });
  REQUIRE_FALSE(after.error);
  CHECK(after.kvs.empty());

  // A watch from r1 replays history, then follows a new put.
  watch_log log;
  watch_request w;
  w.key = "/vb-it/";
  w.start_revision = r1;
  auto id = c.watch(w, log.callback());
  REQUIRE(log.wait([](auto& u) {
    for (auto& x : u)
      if (x.what == watch_update::kind::created)
        return true;
    return false;
  }));
  auto p2 = await<put_result>([&](auto done) {
    c.put({"/vb-it/a", "2", 0, true}, 5s, done);
  });
  REQUIRE_FALSE(p2.error);
  REQUIRE(p2.prev_kv);
  CHECK(p2.prev_kv->value == "1");
  REQUIRE(log.wait([&](auto& u) {
    for (auto& x : u)
      for (auto& e : x.events)
        if (e.kv.mod_revision == p2.revision)
          return true;
    return false;
  }));
  c.cancel_watch(id);
  auto ev = log.events();
  REQUIRE(ev.size() >= 4); // a, b, l put, l delete, a again
  CHECK(ev.front().kv.key == "/vb-it/a");
  CHECK(ev.front().kv.mod_revision == r1);
  CHECK(ev.back().kv.value == "2");
  REQUIRE(ev.back().prev_kv);
  CHECK(ev.back().prev_kv->value == "1");
  bool saw_delete = false;
  for (auto& e : ev)
    saw_delete = saw_delete || (e.type == event_type::del && e.kv.key == "/vb-it/l");
  CHECK(saw_delete);

  // A kept lease: granted, then renewed.
  std::promise<int64_t> granted;
  auto [keeper, status] = c.keep_lease(
    3s, [&](int64_t id) { granted.set_value(id); }, nullptr);
  auto gf = granted.get_future();
  REQUIRE(gf.wait_for(wait_limit) == std::future_status::ready);
  auto lease = gf.get();
  CHECK(lease != 0);
  auto live = await<lease_ttl_result>(
    [&](auto done) { c.lease_time_to_live(lease, false, 5s, done); });
  REQUIRE_FALSE(live.error);
  CHECK(live.granted_ttl == 3);
  CHECK(live.ttl > 0);
  c.stop_keeper(keeper, true);
}
