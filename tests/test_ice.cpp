// The ICE servers of a welcome (model/ice.hpp, SPEC §9).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "model/ice.hpp"
#include "model/secret.hpp"

using namespace vb;
using json = nlohmann::json;

TEST_CASE("ice: none configured is an empty list", "[ice]") {
  CHECK(ice_servers(ice_options{}, "s1", 1000) == json::array());
}

TEST_CASE("ice: STUN as one server, TURN with coturn's REST credentials, new "
          "for each session and time", "[ice]") {
  ice_options o;
  o.stun_urls = {"stun:127.0.0.1:3478"};
  o.turn_urls = {"turn:127.0.0.1:3478?transport=udp", "turns:turn.example:5349"};
  o.turn_secret = "s3cret";
  o.turn_ttl = 600;
  auto servers = ice_servers(o, "session-1", 1000.5);
  REQUIRE(servers.size() == 2);
  CHECK(servers[0] == json{{"urls", {"stun:127.0.0.1:3478"}}});
  CHECK(servers[1]["urls"] == json(o.turn_urls));
  CHECK(servers[1]["username"] == "1600:session-1");
  // coturn computes the same: base64(HMAC-SHA1(secret, username)).
  CHECK(servers[1]["credential"] == base64(hmac_sha1("s3cret", "1600:session-1")));
  CHECK(servers[1]["credential"] == "ZeeeoLk/kVhjKy7sbmcRkcd0C90=");
  CHECK(servers.dump().find("s3cret") == std::string::npos);
  CHECK(ice_servers(o, "session-2", 1000.5)[1]["credential"]
        != servers[1]["credential"]);
}

TEST_CASE("ice: a STUN URL starts with stun:, a TURN URL with turn: or "
          "turns:, and both name a host", "[ice]") {
  CHECK(check_ice_url("stun:127.0.0.1", false).empty());
  CHECK(check_ice_url("turn:host:3478?transport=tcp", true).empty());
  CHECK(check_ice_url("turns:host", true).empty());
  CHECK_FALSE(check_ice_url("turn:host", false).empty());
  CHECK_FALSE(check_ice_url("stun:host", true).empty());
  CHECK_FALSE(check_ice_url("http://host", true).empty());
  CHECK_FALSE(check_ice_url("stun:", false).empty());
  CHECK_FALSE(check_ice_url("stun::3478", false).empty());
  CHECK_FALSE(check_ice_url("stun:ho st", false).empty());
}
