#include "model/url.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

namespace vb {

namespace {

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_alnum(char c) {
  return is_alpha(c) || is_digit(c);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return out;
}

/// RFC 3986's scheme: a letter, then letters, digits, '+', '-', '.'. At
/// least two characters, so that a Windows drive ("c:") is not a scheme.
bool valid_scheme(std::string_view s) {
  if (s.size() < 2 || !is_alpha(s[0]))
    return false;
  for (char c : s)
    if (!is_alnum(c) && c != '+' && c != '-' && c != '.')
      return false;
  return true;
}

/// A host name, or an IPv4 address when it is only digits and dots.
bool valid_name_or_ipv4(std::string_view host) {
  if (host.empty())
    return false;
  bool numeric = true;
  for (char c : host) {
    if (!is_alnum(c) && c != '.' && c != '-' && c != '_')
      return false;
    if (!is_digit(c) && c != '.')
      numeric = false;
  }
  if (!numeric)
    return true;
  // Strict dotted quad: inet_pton refuses "127.1", "1.2.3.256" and "01.2.3.4"
  // (which a resolver would read as octal).
  in_addr addr{};
  return inet_pton(AF_INET, std::string(host).c_str(), &addr) == 1;
}

/// The inside of "[...]": an IPv6 address without a zone id.
bool valid_ipv6(std::string_view host) {
  if (host.empty() || host.find(':') == std::string_view::npos)
    return false;
  for (char c : host)
    if (!is_alnum(c) && c != ':' && c != '.')
      return false;
  in6_addr addr{};
  return inet_pton(AF_INET6, std::string(host).c_str(), &addr) == 1;
}

/// 1..65535 in one to five digits.
bool valid_port(std::string_view port) {
  if (port.empty() || port.size() > 5)
    return false;
  unsigned value = 0;
  for (char c : port) {
    if (!is_digit(c))
      return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value >= 1 && value <= 65535;
}

} // namespace

const char* to_string(url_error x) {
  switch (x) {
    case url_error::none: return "none";
    case url_error::bad_format: return "bad_format";
    case url_error::bad_scheme: return "bad_scheme";
    case url_error::scheme_not_permitted: return "scheme_not_permitted";
    case url_error::user_info: return "user_info";
    case url_error::bad_host: return "bad_host";
    case url_error::bad_port: return "bad_port";
    case url_error::query_or_fragment: return "query_or_fragment";
  }
  return "unknown";
}

url_error parse_url(std::string_view url, url_parts& out) {
  for (char c : url) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f)
      return url_error::bad_format;
  }
  auto sep = url.find("://");
  if (sep == std::string_view::npos || !valid_scheme(url.substr(0, sep)))
    return url_error::bad_scheme;
  auto scheme = lower(url.substr(0, sep));
  if (scheme != "http" && scheme != "https")
    return url_error::scheme_not_permitted;
  auto rest = url.substr(sep + 3);
  auto end = rest.find_first_of("/?#");
  auto authority = rest.substr(0, end);
  auto tail = end == std::string_view::npos ? std::string_view{}
                                            : rest.substr(end);
  if (authority.find('@') != std::string_view::npos)
    return url_error::user_info;
  std::string_view host;
  std::string_view port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos)
      return url_error::bad_host;
    host = authority.substr(1, close - 1);
    if (!valid_ipv6(host))
      return url_error::bad_host;
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        return url_error::bad_host;
      has_port = true;
      port = after.substr(1);
    }
  } else {
    auto colon = authority.find(':');
    host = authority.substr(0, colon);
    if (!valid_name_or_ipv4(host))
      return url_error::bad_host;
    if (colon != std::string_view::npos) {
      has_port = true;
      port = authority.substr(colon + 1);
    }
  }
  if (has_port && !valid_port(port))
    return url_error::bad_port;
  if (tail.find_first_of("?#") != std::string_view::npos)
    return url_error::query_or_fragment;
  for (char c : tail)
    if (static_cast<unsigned char>(c) >= 0x80)
      return url_error::bad_format;
  out.scheme = std::move(scheme);
  out.host = std::string(host);
  out.port = has_port ? std::string(port)
                      : std::string(out.scheme == "http" ? "80" : "443");
  out.target = tail.empty() ? std::string("/") : std::string(tail);
  return url_error::none;
}

url_error check_url(std::string_view url) {
  url_parts ignored;
  return parse_url(url, ignored);
}

std::string join_url(std::string_view base, std::string_view path) {
  while (!base.empty() && base.back() == '/')
    base.remove_suffix(1);
  std::string out(base);
  if (path.empty() || path.front() != '/')
    out += '/';
  out += path;
  return out;
}

std::string encode_path_segment(std::string_view segment) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(segment.size());
  for (char c : segment) {
    if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      auto u = static_cast<unsigned char>(c);
      out += '%';
      out += digits[u >> 4];
      out += digits[u & 0x0f];
    }
  }
  return out;
}

} // namespace vb
