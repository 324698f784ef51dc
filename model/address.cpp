#include "model/address.hpp"

#include "model/header_list.hpp"

#include <arpa/inet.h>
#include <cctype>
#include <cstring>

namespace vb {

std::optional<ip_bytes> parse_ip(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  if (text.empty() || text.size() > 45)
    return std::nullopt;
  char buf[46];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  ip_bytes out{};
  in_addr v4{};
  if (inet_pton(AF_INET, buf, &v4) == 1) {
    out[10] = 0xff;
    out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    return out;
  }
  in6_addr v6{};
  if (text.find(':') != std::string_view::npos && inet_pton(AF_INET6, buf, &v6) == 1) {
    std::memcpy(out.data(), &v6, 16);
    return out;
  }
  return std::nullopt;
}

bool ip_prefix::contains(const ip_bytes& a) const {
  unsigned full = bits / 8, rest = bits % 8;
  if (std::memcmp(a.data(), bytes.data(), full) != 0)
    return false;
  if (rest == 0)
    return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (bytes[full] & mask);
}

std::optional<ip_prefix> parse_address_prefix(std::string_view text) {
  auto slash = text.find('/');
  auto addr = parse_ip(text.substr(0, slash));
  if (!addr)
    return std::nullopt;
  bool v4 = text.substr(0, slash).find(':') == std::string_view::npos;
  ip_prefix p;
  p.bytes = *addr;
  p.bits = 128;
  if (slash != std::string_view::npos) {
    auto len = text.substr(slash + 1);
    if (len.empty() || len.size() > 3)
      return std::nullopt;
    unsigned n = 0;
    for (char c : len) {
      if (!std::isdigit(static_cast<unsigned char>(c)))
        return std::nullopt;
      n = n * 10 + static_cast<unsigned>(c - '0');
    }
    if (n > (v4 ? 32u : 128u))
      return std::nullopt;
    p.bits = v4 ? 96 + n : n;
  }
  return p;
}

std::string ip_text(const ip_bytes& a) {
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  char buf[INET6_ADDRSTRLEN];
  if (std::memcmp(a.data(), mapped, 12) == 0) {
    inet_ntop(AF_INET, a.data() + 12, buf, sizeof buf);
    return buf;
  }
  inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
  return buf;
}

bool is_trusted(const ip_bytes& a, const std::vector<ip_prefix>& trusted) {
  for (auto& p : trusted)
    if (p.contains(a))
      return true;
  return false;
}

/// An X-Forwarded-For entry as an address: "1.2.3.4", "2001:db8::1",
/// "[2001:db8::1]", and with a port ("1.2.3.4:5678", "[2001:db8::1]:80").
std::optional<ip_bytes> entry_address(std::string_view e) {
  if (auto a = parse_ip(e))
    return a;
  if (!e.empty() && e.front() == '[') {
    auto close = e.find(']');
    if (close != std::string_view::npos && close + 1 < e.size() && e[close + 1] == ':')
      return parse_ip(e.substr(0, close + 1));
    return std::nullopt;
  }
  auto colon = e.find(':');
  if (colon != std::string_view::npos && e.find(':', colon + 1) == std::string_view::npos)
    return parse_ip(e.substr(0, colon));
  return std::nullopt;
}

std::optional<std::string> forwarded_client(std::string_view x_forwarded_for,
                                            const std::vector<ip_prefix>& trusted) {
  if (trim_ows(x_forwarded_for).empty())
    return std::nullopt;
  auto list = header_items(x_forwarded_for);
  std::optional<ip_bytes> last; // the hop right of the current one
  for (auto i = list.size(); i-- > 0;) {
    auto a = entry_address(list[i]);
    if (!a)
      break; // not an address: believe the hops right of it only
    last = a;
    if (!is_trusted(*a, trusted))
      return ip_text(*a);
  }
  if (last)
    return ip_text(*last);
  return std::nullopt;
}

std::optional<std::string> forwarded_scheme(std::string_view x_forwarded_proto) {
  auto first = trim_ows(x_forwarded_proto.substr(0, x_forwarded_proto.find(',')));
  std::string s;
  for (char c : first)
    s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "http" || s == "https")
    return s;
  return std::nullopt;
}

} // namespace vb
