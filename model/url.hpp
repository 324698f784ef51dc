// The one URL grammar of voicebot-server: what a provider's `base_url` may
// be (checked by validation at registration) is exactly what the outbound
// HTTP client (link/http_client) can call, so a provider that registers is
// never refused later as a "bad url".
//
//   url       = scheme "://" authority [ path ]
//   scheme    = "http" / "https"                  ; any case
//   authority = host [ ":" port ]                 ; no user info ("u:p@")
//   host      = name / IPv4 / "[" IPv6 "]"
//   name      = 1*( ALPHA / DIGIT / "-" / "." / "_" ), not only digits and dots
//   IPv4      = four decimal parts 0-255, no leading zeros ("127.0.0.1")
//   IPv6      = a full or compressed IPv6 address, no zone id ("[::1]")
//   port      = 1*5DIGIT, 1..65535                ; not empty when ':' is there
//   path      = "/" *( visible ASCII except "?" and "#" )
//
// No query or fragment: the client appends its paths to the base URL
// (`{base_url}/bots/{bot}/join`), so a query would end up in the middle. No
// space, control character or non-ASCII byte anywhere (nothing can smuggle
// bytes into the request line or the Host header).
//
// `https` is part of the grammar (SPEC §2: a base_url is an http:// or
// https:// URL), but this build's client has no TLS and refuses to call it
// ("https providers are not supported"): a transport limit, not a grammar one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vb {

/// A URL split for a request. `host` is bare: an IPv6 literal is stored
/// without its brackets ("::1"). `port` is always set: the explicit one,
/// else "80" for http and "443" for https. `target` is the path, at least
/// "/". `scheme` is lower case.
struct url_parts {
  std::string scheme, host, port, target;
};

/// Why a URL is not in the grammar, in the order the checks run.
enum class url_error : uint8_t {
  none = 0,
  bad_format,           // a space, control character or non-ASCII byte
  bad_scheme,           // no "scheme://", or a malformed scheme
  scheme_not_permitted, // a scheme other than http or https
  user_info,            // "user[:password]@" before the host
  bad_host,             // empty, bad characters, bad IPv4 or IPv6 literal
  bad_port,             // empty, not digits, 0 or above 65535
  query_or_fragment,    // a '?' or '#'
};

/// "none", "bad_format", ... (for logs and test output).
const char* to_string(url_error x);

/// Checks `url` against the grammar above and, when it is in it, fills
/// `out`; on an error `out` is left untouched.
url_error parse_url(std::string_view url, url_parts& out);

/// Only the check: `parse_url` without the parts.
url_error check_url(std::string_view url);

/// Joins a base URL (with or without trailing slashes, with or without a path
/// prefix) and a path: join_url("http://h:1/p/", "/bots") ==
/// "http://h:1/p/bots". A path without a leading '/' gets one.
std::string join_url(std::string_view base, std::string_view path);

/// Percent-encodes one path segment (everything except ALPHA, DIGIT and
/// "-._~"), for values that come from outside, such as a provider's run_id:
/// join_url(base, "/bots/runs/" + encode_path_segment(run_id) + "/stop").
std::string encode_path_segment(std::string_view segment);

} // namespace vb
