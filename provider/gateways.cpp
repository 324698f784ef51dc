#include "provider/gateways.hpp"

#include "model/url.hpp"

namespace vb {

std::string to_string(const gateway_address& x) {
  auto port = std::to_string(x.port);
  if (x.host.find(':') != std::string::npos)
    return "[" + x.host + "]:" + port;
  return x.host + ":" + port;
}

std::string to_string(const std::vector<gateway_address>& xs) {
  std::string result;
  for (auto& x : xs) {
    if (!result.empty())
      result += ", ";
    result += to_string(x);
  }
  return result;
}

std::optional<gateway_address> parse_gateway(std::string_view text,
                                             std::string& why) {
  std::string_view host;
  std::string_view port;
  bool bracketed = !text.empty() && text.front() == '[';
  if (bracketed) {
    auto close = text.find(']');
    if (close == std::string_view::npos) {
      why = "an IPv6 address needs its closing ']' ([ADDRESS]:PORT)";
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    auto rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      why = rest.empty() ? "no port (HOST:PORT or [IPv6]:PORT)"
                         : "only ':PORT' may follow ']'";
      return std::nullopt;
    }
    port = rest.substr(1);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      why = "no port (HOST:PORT or [IPv6]:PORT)";
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      why = "an IPv6 address goes in brackets ([ADDRESS]:PORT)";
      return std::nullopt;
    }
  }
  if (host.empty()) {
    why = "empty host";
    return std::nullopt;
  }
  if (port.empty()) {
    why = "no port (HOST:PORT or [IPv6]:PORT)";
    return std::nullopt;
  }
  uint32_t number = 0;
  for (auto c : port) {
    if (c < '0' || c > '9' || port.size() > 5) {
      why = "port '" + std::string{port} + "' is not a number from 1 to 65535";
      return std::nullopt;
    }
    number = number * 10 + static_cast<uint32_t>(c - '0');
  }
  if (number == 0 || number > 65535) {
    why = "port " + std::to_string(number) + " is not 1 to 65535";
    return std::nullopt;
  }
  // The host grammar is the URL grammar's (model/url.hpp), so a gateway
  // and a provider's base_url accept the same hosts.
  std::string authority =
      bracketed ? "[" + std::string{host} + "]" : std::string{host};
  if (check_url("http://" + authority + ":1") != url_error::none) {
    why = "'" + std::string{host}
          + "' is not a host name, an IPv4 address "
            "or an [IPv6] address";
    return std::nullopt;
  }
  return gateway_address{std::string{host}, static_cast<uint16_t>(number)};
}

} // namespace vb
