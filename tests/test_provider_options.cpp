// voicebot-provider's `--server HOST:PORT` values (provider/gateways.hpp):
// which gateways it takes, and why it refuses the others (apps/
// provider_main.cpp exits 2 with that reason).
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "provider/gateways.hpp"

using vb::gateway_address;

namespace {

/// The reason `text` is refused, or "" when it is taken.
std::string refusal(const std::string& text) {
  std::string why;
  auto gw = vb::parse_gateway(text, why);
  if (gw) {
    CHECK(why.empty());
    return "";
  }
  CHECK(!why.empty());
  return why;
}

gateway_address parsed(const std::string& text) {
  std::string why;
  auto gw = vb::parse_gateway(text, why);
  INFO(text << ": " << why);
  REQUIRE(gw);
  return *gw;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("voicebot-provider's --server takes a name, an IPv4 address or "
          "a bracketed IPv6 address with a port from 1 to 65535",
          "[provider options]") {
  CHECK(parsed("127.0.0.1:8001") == gateway_address{"127.0.0.1", 8001});
  CHECK(parsed("gw-1.example.org:1") == gateway_address{"gw-1.example.org", 1});
  CHECK(parsed("localhost:65535") == gateway_address{"localhost", 65535});
  // IPv6 is kept bare, the form CAF's connect takes.
  CHECK(parsed("[::1]:8001") == gateway_address{"::1", 8001});
  CHECK(parsed("[fe80::1:2]:9") == gateway_address{"fe80::1:2", 9});
}

TEST_CASE("voicebot-provider writes a gateway back in the form --server "
          "reads",
          "[provider options]") {
  for (std::string text : {"127.0.0.1:8001", "[::1]:8001", "h:1"})
    CHECK(vb::to_string(parsed(text)) == text);
  CHECK(vb::to_string(std::vector<gateway_address>{{"a", 1}, {"::1", 2}})
        == "a:1, [::1]:2");
}

TEST_CASE("voicebot-provider's --server without a port, with port 0 or one "
          "above 65535 is refused, naming the port",
          "[provider options]") {
  // The value, and what its refusal names.
  for (auto [text, part] :
       {std::pair{"127.0.0.1", "no port"}, {"127.0.0.1:", "no port"},
        {"[::1]", "no port"}, {"[::1]:", "no port"}, {"h:0", "port 0"},
        {"h:65536", "port 65536"}, {"h:99999", "port 99999"},
        {"h:123456", "'123456'"}, {"h:80x", "'80x'"}, {"h:-1", "'-1'"},
        {"h:8001/path", "'8001/path'"}}) {
    CAPTURE(text);
    CHECK(contains(refusal(text), part));
  }
}

TEST_CASE("voicebot-provider's --server with an empty host, an unbracketed "
          "IPv6 address or a host outside the URL grammar is refused",
          "[provider options]") {
  CHECK(refusal(":8001") == "empty host");
  CHECK(refusal("[]:8001") == "empty host");
  CHECK(refusal("") == "no port (HOST:PORT or [IPv6]:PORT)");
  for (auto [text, part] :
       {std::pair{"::1:8001", "brackets"}, {"[::1:8001", "closing ']'"},
        {"[::1]8001", "':PORT'"}, {"[not-v6]:1", "not a host name"},
        {"user@h:1", "not a host name"}, {"h h:1", "not a host name"},
        {"1.2.3.999:1", "not a host name"}}) {
    CAPTURE(text);
    CHECK(contains(refusal(text), part));
  }
}
