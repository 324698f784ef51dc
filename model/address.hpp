// IP addresses and prefixes for the trusted reverse proxies (SPEC §6,
// docs/deployment.md): which peers may speak for a client through
// X-Forwarded-For, and which client that header names. Plain functions on
// text, no sockets: the front end and the option checks share them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vb {

/// An address as 16 bytes: IPv6 as it is, IPv4 mapped (::ffff:a.b.c.d), so
/// one prefix check covers both and a v4 peer seen on a v6 socket matches.
using ip_bytes = std::array<uint8_t, 16>;

/// "127.0.0.1", "::1", "[::1]", "::ffff:127.0.0.1"; none for anything else.
std::optional<ip_bytes> parse_ip(std::string_view text);

/// An address or a CIDR prefix: "10.0.0.0/8", "fd00::/8", "127.0.0.1" (/32),
/// "::1" (/128).
struct ip_prefix {
  ip_bytes bytes{};
  unsigned bits = 128; // of the 16-byte form (a v4 /8 is 96 + 8)
  bool contains(const ip_bytes& a) const;
};
std::optional<ip_prefix> parse_address_prefix(std::string_view text);

/// The text form of an address (v4-mapped ones as dotted IPv4).
std::string ip_text(const ip_bytes& a);

/// The client of a request that came from a trusted proxy with these
/// X-Forwarded-For values: walking the list from the right (the hop nearest
/// to this server), the first address that is not a trusted proxy. When
/// every entry is trusted, the left-most; an entry that is not an address
/// (a forged or obfuscated one) ends the walk at the hop before it, which
/// is the last one a trusted proxy vouched for. None when the header names
/// no usable address: the caller takes the connection's own peer.
std::optional<std::string> forwarded_client(std::string_view x_forwarded_for,
                                            const std::vector<ip_prefix>& trusted);

/// Whether `a` is in any of `trusted`.
bool is_trusted(const ip_bytes& a, const std::vector<ip_prefix>& trusted);

/// X-Forwarded-Proto's scheme ("http" or "https", lower case; the first
/// of a list); none for anything else.
std::optional<std::string> forwarded_scheme(std::string_view x_forwarded_proto);

} // namespace vb
