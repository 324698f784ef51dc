// Text from outside (a URL, a method, an answer's body) cut down for a log
// line or an error message. A cleaner, not a check: model/validate.hpp's
// printable() is the check that says whether a string may be stored.
#pragma once

#include <string>
#include <string_view>

namespace vb {

/// The first 200 characters of `s` (then "..." when there were more), each
/// control character (C0 and DEL) replaced by '?', so that nothing from
/// outside can break a log line or forge one.
std::string log_text(std::string_view s);

} // namespace vb
