// Where voicebot-provider finds the servers' provider gateways: the
// `--server HOST:PORT` values (SPEC §8: several gateways, repeatable) and
// the order it tries them in. Plain values, no actors.
//
//   gateway = host ":" port
//   host    = name / IPv4 / "[" IPv6 "]"    ; model/url.hpp's host grammar
//   port    = 1*5DIGIT, 1..65535
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vb {

/// One server's provider gateway. `host` is bare: an IPv6 literal is kept
/// without its brackets ("::1").
struct gateway_address {
  std::string host;
  uint16_t port = 0;

  friend bool operator==(const gateway_address& x, const gateway_address& y) {
    return x.host == y.host && x.port == y.port;
  }
};

/// "127.0.0.1:8001", "[::1]:8001": the form `parse_gateway` reads.
std::string to_string(const gateway_address& x);

/// "a:1, [::1]:2" (for logs).
std::string to_string(const std::vector<gateway_address>& xs);

/// Reads "HOST:PORT" or "[IPv6]:PORT". On an error it returns nothing and
/// says why in `why` ("no port", "empty host", "port 0 is not 1 to
/// 65535", ...).
std::optional<gateway_address> parse_gateway(std::string_view text,
                                             std::string& why);

} // namespace vb
