// Trusted proxies (model/address.hpp): addresses, prefixes, and which
// client an X-Forwarded-For names.
#include <catch2/catch.hpp>

#include <tuple>

#include "model/address.hpp"

using namespace vb;

namespace {

std::vector<ip_prefix> prefixes(std::initializer_list<const char*> texts) {
  std::vector<ip_prefix> out;
  for (auto t : texts) {
    auto p = parse_address_prefix(t);
    REQUIRE(p);
    out.push_back(*p);
  }
  return out;
}

} // namespace

TEST_CASE("address: IPv4 and IPv6 literals, and what is not one", "[address]") {
  CHECK(ip_text(*parse_ip("127.0.0.1")) == "127.0.0.1");
  CHECK(ip_text(*parse_ip("::1")) == "::1");
  CHECK(ip_text(*parse_ip("[2001:db8::7]")) == "2001:db8::7");
  // A v4 peer on a v6 socket is the same address.
  CHECK(*parse_ip("::ffff:10.1.2.3") == *parse_ip("10.1.2.3"));
  for (auto bad : {"", "localhost", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4x",
                   "unknown", "1.2.3.4 ", "[::1", "::1]", "_hidden"})
    CHECK_FALSE(parse_ip(bad));
}

TEST_CASE("address: prefixes contain what they should", "[address]") {
  // A prefix, an address inside it and one outside.
  for (auto [text, inside, outside] :
       {std::tuple{"10.0.0.0/8", "10.255.1.2", "11.0.0.1"},
        std::tuple{"127.0.0.1", "127.0.0.1", "127.0.0.2"},
        std::tuple{"192.168.4.0/22", "192.168.7.255", "192.168.8.0"},
        std::tuple{"fd00::/8", "fd12:3456::1", "fe80::1"}}) {
    CAPTURE(text);
    auto prefix = *parse_address_prefix(text);
    CHECK(prefix.contains(*parse_ip(inside)));
    CHECK_FALSE(prefix.contains(*parse_ip(outside)));
  }
  CHECK_FALSE(parse_address_prefix("fd00::/8")->contains(*parse_ip("10.0.0.1")));
  CHECK(parse_address_prefix("0.0.0.0/0")->contains(*parse_ip("8.8.8.8")));
  for (auto bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "/8", "10/8",
                   "host.example/32"})
    CHECK_FALSE(parse_address_prefix(bad));
}

TEST_CASE("address: X-Forwarded-For gives the right-most untrusted entry",
          "[address]") {
  auto trusted = prefixes({"127.0.0.1", "10.0.0.0/8"});
  // nginx appends the address it saw: "client, proxy1, ...".
  CHECK(forwarded_client("203.0.113.7", trusted) == "203.0.113.7");
  CHECK(forwarded_client("203.0.113.7, 10.1.1.1", trusted) == "203.0.113.7");
  // A client that forges entries: they sit left of what the proxy saw.
  CHECK(forwarded_client("1.1.1.1, 198.51.100.9", trusted) == "198.51.100.9");
  CHECK(forwarded_client("10.9.9.9, 198.51.100.9, 10.0.0.2", trusted) == "198.51.100.9");
  // Every entry trusted: the left-most.
  CHECK(forwarded_client("10.0.0.5, 10.0.0.6", trusted) == "10.0.0.5");
  // Ports and brackets are dropped; v6 clients work.
  CHECK(forwarded_client("[2001:db8::1]:4711", trusted) == "2001:db8::1");
  CHECK(forwarded_client("203.0.113.7:4711", trusted) == "203.0.113.7");
  CHECK(forwarded_client("2001:db8::2", trusted) == "2001:db8::2");
  // Not an address: believe only the hops right of it.
  CHECK(forwarded_client("unknown, 10.0.0.3", trusted) == "10.0.0.3");
  CHECK(forwarded_client("203.0.113.7, garbage", trusted) == std::nullopt);
  // Nothing said: the caller takes the peer.
  CHECK(forwarded_client("", trusted) == std::nullopt);
  CHECK(forwarded_client(" , ", trusted) == std::nullopt);
}

TEST_CASE("address: X-Forwarded-Proto", "[address]") {
  CHECK(forwarded_scheme("https") == "https");
  CHECK(forwarded_scheme("HTTP") == "http");
  CHECK(forwarded_scheme("https, http") == "https");
  CHECK(forwarded_scheme("gopher") == std::nullopt);
  CHECK(forwarded_scheme("") == std::nullopt);
}
