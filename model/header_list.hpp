// Comma-separated header values (RFC 9110 §5.6.1: `#element` lists with
// optional whitespace), as If-None-Match, Accept-Encoding and
// X-Forwarded-For carry them.
#pragma once

#include <string_view>
#include <vector>

namespace vb {

/// `s` without the spaces and tabs around it.
std::string_view trim_ows(std::string_view s);

/// The items of a list, trimmed, in order (empty ones kept: "a,,b" has 3).
std::vector<std::string_view> header_items(std::string_view value);

} // namespace vb
