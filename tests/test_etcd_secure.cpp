// The etcd client's connections, TLS and authentication: kept-alive
// connections against the fake gateway, etcd's token (asked for once,
// asked for again when etcd calls it invalid, a wrong password refused),
// and, when `etcd` is installed, a real member with TLS and client
// certificates (--client-cert-auth): calls and a watch over TLS; a wrong CA
// and a missing client certificate refused with their causes.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "fake_etcd_gateway.hpp"
#include "tls_certificates.hpp"

using vb::test::etcd_member;
using vb::test::find_etcd;

namespace {

/// A gateway that knows one user ("vb", password "right"): tokens tok-1,
/// tok-2, ...; a put carrying tok-1 is told the token is invalid.
void with_auth(int fd, const http_request& r, int nth) {
  std::string out = answer(200, R"({"header":{"revision":"7"}})");
  if (r.target == "/v3/auth/authenticate") {
    auto j = json::parse(r.body);
    if (j["name"] != "vb" || j["password"] != "right")
      out = answer(400, R"({"error":"etcdserver: authentication failed, invalid user ID or password","message":"etcdserver: authentication failed, invalid user ID or password","code":3})");
    else
      out = answer(200, R"({"header":{"revision":"2"},"token":"tok-)"
                          + std::to_string(nth) + R"("})");
  } else if (r.head.find("\r\nauthorization: tok-1\r\n") != std::string::npos) {
    out = answer(401, R"({"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16})");
  } else if (r.head.find("\r\nauthorization: tok-") == std::string::npos) {
    out = answer(400, R"({"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3})");
  }
  send_all(fd, out);
}

/// The client's options for `gw` as user "vb" with `password`.
etcd_options as_user(fake_gateway& gw, const std::string& password) {
  auto o = options_for({gw.url()});
  o.user = "vb";
  o.password = password;
  return o;
}

put_result put(etcd_client& c, const std::string& key) {
  return await<put_result>([&](auto done) { c.put({key, "v"}, 3s, done); });
}

} // namespace

TEST_CASE("unary calls to one endpoint share a kept-alive connection",
          "[etcd]") {
  fake_gateway gw(with_auth, true);
  etcd_client c(as_user(gw, "right"));
  for (int i = 0; i < 5; ++i)
    REQUIRE_FALSE(put(c, "k").error);
  CHECK(gw.requests("/v3/kv/put").size() == 6); // one refused for its token
  CHECK(gw.connections() == 1);
}

TEST_CASE("with a user, each call carries etcd's token: asked for once, asked "
          "for again when etcd calls it invalid", "[etcd]") {
  fake_gateway gw(with_auth);
  etcd_client c(as_user(gw, "right"));
  // Calls at once wait for one authentication.
  std::vector<std::future<put_result>> puts;
  for (int i = 0; i < 4; ++i) {
    auto p = std::make_shared<std::promise<put_result>>();
    puts.push_back(p->get_future());
    c.put({"k", "v"}, 3s, [p](put_result r) { p->set_value(std::move(r)); });
  }
  for (auto& f : puts) {
    REQUIRE(f.wait_for(wait_limit) == std::future_status::ready);
    CHECK_FALSE(f.get().error); // each refused with tok-1, then sent with tok-2
  }
  CHECK(gw.requests("/v3/auth/authenticate").size() == 2);
  auto sent = gw.requests("/v3/kv/put");
  REQUIRE(sent.size() == 8);
  CHECK(sent.back().head.find("\r\nauthorization: tok-2\r\n") != std::string::npos);
  // The new token is kept.
  REQUIRE_FALSE(put(c, "k").error);
  CHECK(gw.requests("/v3/auth/authenticate").size() == 2);
  // A watch carries it too.
  watch_log log;
  c.watch(watch_from("/w/", 1), log.callback());
  REQUIRE(gw.wait_requests("/v3/watch", 1));
  CHECK(gw.requests("/v3/watch")[0].head.find("\r\nauthorization: tok-2\r\n")
        != std::string::npos);
}

TEST_CASE("a wrong password is refused, naming the user and never the "
          "password", "[etcd]") {
  fake_gateway gw(with_auth);
  etcd_client c(as_user(gw, "wrong-pw"));
  auto r = put(c, "k");
  CHECK(r.error.kind == errc::refused);
  CHECK_THAT(r.error.message, Catch::Contains("user 'vb'")
                                && Catch::Contains("authentication failed"));
  CHECK(r.error.message.find("wrong-pw") == std::string::npos);
  CHECK(gw.requests("/v3/kv/put").empty());
}

TEST_CASE("https endpoints need a CA, and TLS files that load", "[etcd]") {
  auto o = options_for({"https://127.0.0.1:1"});
  CHECK_THAT(etcd_client(o).config_error(), Catch::Contains("--etcd-ca"));
  o.ca_file = "/nonexistent/ca.pem";
  CHECK_THAT(etcd_client(o).config_error(),
             Catch::Contains("cannot read the CA file /nonexistent/ca.pem"));
  auto plain = options_for({"http://127.0.0.1:1"});
  plain.ca_file = "/etc/ca.pem";
  CHECK_THAT(etcd_client(plain).config_error(), Catch::Contains("no etcd endpoint is https"));
}

TEST_CASE("against a real etcd member over TLS with client certificates: "
          "calls and a watch; a wrong CA or no client certificate refused",
          "[etcd][real]") {
  auto binary = find_etcd();
  if (binary.empty()) {
    WARN("SKIPPED: etcd is not installed (apt-get install etcd-server)");
    return;
  }
  vb::test::certificate_dir certs;
  certs.make_ca("ca");
  certs.make_ca("other-ca");
  certs.make_cert("etcd", "ca", 3600, "IP:127.0.0.1");
  certs.make_cert("client", "ca");
  etcd_member member(binary, {certs.path("etcd.pem"), certs.path("etcd.key"),
                              certs.path("ca.pem")});
  REQUIRE(member.url().rfind("https://", 0) == 0);
  auto o = options_for({member.url()});
  o.ca_file = certs.path("ca.pem");
  o.cert_file = certs.path("client.pem");
  o.key_file = certs.path("client.key");
  etcd_client c(o);
  REQUIRE(c.config_error().empty());
  auto st = await_serving(c);

  watch_log log;
  c.watch(watch_from("/tls/", st.revision + 1), log.callback());
  REQUIRE_FALSE(put(c, "/tls/a").error);
  auto got = await<range_result>([&](auto done) { c.range(key_range("/tls/a"), 5s, done); });
  REQUIRE_FALSE(got.error);
  REQUIRE(got.kvs.size() == 1);
  CHECK(got.kvs[0].value == "v");
  CHECK(log.wait([](auto& u) {
    for (auto& x : u)
      for (auto& e : x.events)
        if (e.kv.key == "/tls/a")
          return true;
    return false;
  }));

  SECTION("a CA that did not sign etcd's certificate") {
    auto wrong = o;
    wrong.ca_file = certs.path("other-ca.pem");
    etcd_client w(wrong);
    auto r = await<status_result>([&](auto done) { w.status(3s, done); });
    CHECK(r.error.kind == errc::refused);
    CHECK_THAT(r.error.message, Catch::Contains("certificate verify failed"));
  }
  SECTION("no client certificate") {
    auto anonymous = o;
    anonymous.cert_file.clear();
    anonymous.key_file.clear();
    etcd_client w(anonymous);
    auto r = await<status_result>([&](auto done) { w.status(3s, done); });
    CHECK(r.error.kind == errc::refused);
    CHECK_THAT(r.error.message, Catch::Contains("certificate"));
  }
}
